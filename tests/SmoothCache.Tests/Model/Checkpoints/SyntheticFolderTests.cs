using System.Text.Json.Nodes;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;
using SmoothCache.Tests.Cli;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Model.Checkpoints;

/// <summary>
/// Model folders in the DiT-XL/2 layout written by `smoothcache synth`, and sharded folders.
/// The full 28-layer XL folder (750M parameters, 1.4 GB per format in fp16) is written in both
/// formats and compared by every name, shape and dtype plus the values of a sample of tensors
/// (everything outside the blocks and all of the first and last block): comparing all 750M values
/// would double the test's time without reaching code the sample does not. The forward runs on a
/// 2-layer folder of the full XL width, since one 28-layer forward takes minutes on the CPU backend.
/// </summary>
public class SyntheticFolderTests
{
    private static void Synth(string folder, params string[] options)
    {
        var run = CliRunner.Run(["synth", "--out", folder, .. options]);
        Assert.True(run.ExitCode == SmoothCache.Cli.ExitCodes.Success, run.Error);
        Assert.Contains($"wrote {folder}", run.Out);
    }

    [Fact]
    public void FullXlFolderHasTheSameTensorsAsSafetensorsAndAsBin()
    {
        using var temp = new TempFolder();
        string st = temp.File("xl-safetensors"), bin = temp.File("xl-bin");
        Synth(st, "--dtype", "fp16");
        Synth(bin, "--dtype", "fp16", "--format", "bin");
        Assert.True(File.Exists(Path.Combine(bin, "transformer", "diffusion_pytorch_model.bin")));

        var xl = SyntheticWeights.XL2_256;
        Assert.Equal(xl, DiTConfig.Load(Path.Combine(st, "transformer", "config.json")));
        Assert.Equal(xl, DiTConfig.Load(Path.Combine(bin, "transformer", "config.json")));
        using var expected = new SyntheticWeights(xl);
        using var fromSafetensors = WeightSources.OpenModelFolder(Path.Combine(st, "transformer"));
        using var fromBin = WeightSources.OpenModelFolder(Path.Combine(bin, "transformer"));
        var layout = SyntheticWeights.Layout(xl).ToList();
        Assert.Equal(layout.Select(e => e.Name), fromSafetensors.Names);
        Assert.Equal(layout.Select(e => e.Name), fromBin.Names);
        foreach (var (name, shape) in layout)
        {
            Assert.Equal("F16", fromSafetensors.Describe(name).DType);
            Assert.Equal(shape, fromSafetensors.Describe(name).Shape);
            Assert.Equal(shape, fromBin.Describe(name).Shape);
            Assert.Equal("F16", fromBin.Describe(name).DType);
        }
        long parameters = layout.Sum(e => e.Shape.Aggregate(1L, (a, b) => a * b));
        Assert.InRange(parameters, 740_000_000, 760_000_000); // DiT-XL/2's 675M plus 27 extra embedder copies

        var sample = layout.Where(e => !e.Name.StartsWith("transformer_blocks.", StringComparison.Ordinal)
            || e.Name.StartsWith("transformer_blocks.0.", StringComparison.Ordinal)
            || e.Name.StartsWith($"transformer_blocks.{xl.NumLayers - 1}.", StringComparison.Ordinal));
        foreach (var (name, shape) in sample)
        {
            var values = fromSafetensors.ReadFloat32(name, shape);
            Assert.Equal(values, fromBin.ReadFloat32(name, shape));
            Assert.Equal(expected.ReadFloat32(name).Select(v => (float)(Half)v), values);
        }
    }

    [Fact]
    public void XlWidthForwardRunsOnTheCpu()
    {
        using var temp = new TempFolder();
        string folder = temp.File("xl2");
        Synth(folder, "--layers", "2", "--dtype", "fp16");

        using var pipeline = DiTPipeline.Load(folder, Cpu);
        var model = pipeline.Transformer;
        Assert.Equal(SyntheticWeights.XL2_256 with { NumLayers = 2 }, model.Config);
        Assert.True(model.SharedConditioning);
        Assert.Null(pipeline.Vae);
        using var input = Cpu.Arena.Upload(Random(7, 4 * 32 * 32), 1, 4, 32, 32);
        using var y = model.Forward(input, [500f], [207]);
        Assert.Equal([1, 8, 32, 32], y.Shape);
        var output = y.ToArray();
        Assert.All(output, v => Assert.True(float.IsFinite(v)));
        Assert.True(output.Select(v => (double)v * v).Average() > 1e-6, "output is all zeros");
    }

    [Fact]
    public void ShardedFolderLoadsLikeTheSingleFile()
    {
        using var temp = new TempFolder();
        string folder = temp.File("dit-small-sharded");
        Directory.CreateDirectory(folder);
        File.Copy(Fixture("random", "dit-small", "config.json"), Path.Combine(folder, "config.json"));
        using (var original = SafetensorsFile.Open(Fixture("random", "dit-small", "diffusion_pytorch_model.safetensors")))
        {
            var names = original.Names.ToList();
            var weightMap = new JsonObject();
            for (int shard = 0; shard < 2; shard++)
            {
                string file = $"diffusion_pytorch_model-0000{shard + 1}-of-00002.safetensors";
                var part = names.Where((_, i) => i % 2 == shard).ToList();
                SafetensorsWriter.Write(Path.Combine(folder, file),
                    part.Select(n => (n, original.Describe(n).Shape, original.ReadFloat32(n))));
                foreach (var n in part) weightMap[n] = file;
            }
            File.WriteAllText(Path.Combine(folder, "diffusion_pytorch_model.safetensors.index.json"),
                new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = weightMap }.ToJsonString());
        }

        using (var sharded = WeightSources.OpenModelFolder(folder))
            Assert.IsType<ShardedSafetensors>(sharded);
        using var reference = SafetensorsFile.Open(Fixture("random", "dit-small-forward.safetensors"));
        using var pipeline = DiTPipeline.Load(folder, Cpu);
        using var x = Cpu.Arena.Upload(reference.ReadFloat32("x", 3, 4, 8, 8), 3, 4, 8, 8);
        var labels = reference.ReadFloat32("class_labels", 3).Select(v => (int)v).ToArray();
        using var output = pipeline.Transformer.Forward(x, reference.ReadFloat32("timestep", 3), labels);
        double error = RelativeL2(output.ToArray(), reference.ReadFloat64("out_f64"));
        Assert.True(error < 1e-5, $"relative L2 error {error:E2}");
    }
}
