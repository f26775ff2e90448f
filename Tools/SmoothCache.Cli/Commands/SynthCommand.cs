using System.CommandLine;
using System.Diagnostics;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Cli.Commands;

/// <summary>
/// `smoothcache synth`: writes a diffusers pipeline folder with random weights in the DiT-XL/2-256
/// layout (optionally fewer layers), for benchmarks and loader checks where the real checkpoint
/// cannot be downloaded.
/// </summary>
public static class SynthCommand
{
    public static Command Create(CliContext context)
    {
        var output = new Option<string>("--out") { Description = "folder to create (must not exist or be empty)", Required = true };
        var layers = new Option<int>("--layers") { Description = "transformer blocks", DefaultValueFactory = _ => SyntheticWeights.XL2_256.NumLayers };
        var dtype = new Option<string>("--dtype") { Description = "fp16 or fp32", DefaultValueFactory = _ => "fp16" };
        var format = new Option<string>("--format") { Description = "safetensors or bin (torch.save zip)", DefaultValueFactory = _ => "safetensors" };
        var seed = new Option<int>("--seed") { Description = "seed of the random weights", DefaultValueFactory = _ => 0 };
        var command = new Command("synth", "Write a model folder with random weights in the DiT-XL/2 layout.") { output, layers, dtype, format, seed };
        command.SetAction(parse =>
        {
            string folder = UserErrors.OutputFolder("--out", parse.GetValue(output)!);
            int layerCount = parse.GetValue(layers);
            if (layerCount < 1) throw new UserInputException($"--layers must be at least 1, got {layerCount}");
            var saveType = parse.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "fp16" => SaveDType.F16,
                "fp32" => SaveDType.F32,
                var other => throw new UserInputException($"--dtype '{other}' is unknown: expected fp16 or fp32"),
            };
            bool bin = parse.GetValue(format)!.ToLowerInvariant() switch
            {
                "safetensors" => false,
                "bin" => true,
                var other => throw new UserInputException($"--format '{other}' is unknown: expected safetensors or bin"),
            };
            if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
                throw new UserInputException($"--out: folder '{folder}' exists and is not empty");

            var timer = Stopwatch.StartNew();
            using var weights = new SyntheticWeights(SyntheticWeights.XL2_256 with { NumLayers = layerCount }, parse.GetValue(seed));
            weights.WriteFolder(folder, saveType, bin);
            long parameters = weights.Names.Sum(n => weights.Describe(n).ElementCount);
            context.Out.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"wrote {folder}: DiT-XL/2 layout, {layerCount} layers, {weights.Names.Count} tensors, " +
                $"{parameters:N0} parameters, {parse.GetValue(dtype)} {(bin ? "bin" : "safetensors")}, {timer.Elapsed.TotalSeconds:F1} s"));
            return ExitCodes.Success;
        });
        return command;
    }
}
