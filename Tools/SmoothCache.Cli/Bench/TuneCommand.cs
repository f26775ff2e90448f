using System.CommandLine;
using SmoothCache.Cli.Commands;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Bench;

/// <summary>
/// `smoothcache tune`: times every TMA GEMM variant and split along K at the fp16 GEMM shapes a model's forward
/// multiplies at the given batches and writes the fastest per shape as a GEMM tuning table (<see cref="GemmTuning"/>).
/// Exit 1 when a candidate failed its float64 check (the table, written anyway, never takes one that did).
/// </summary>
public static class TuneCommand
{
    /// <summary>The batches DiT-XL/2's bars are measured at: one image with guidance, and eight.</summary>
    private static readonly int[] DefaultBatches = [2, 16];

    public static Command Create(CliContext context)
    {
        var model = new Option<string>("--model")
        {
            Description = "xl (DiT-XL/2-256's shapes, synthetic weights) or a diffusers pipeline or transformer folder",
            DefaultValueFactory = _ => "xl",
        };
        var batches = new Option<int[]>("--batch")
        {
            // The defaults are in the description: help would write a list's default as "2|16", which the option does not take.
            Description = $"forward batches whose GEMMs to tune, space-separated (rows of the CFG-doubled batch: 2 for one image, 16 for 8) " +
                          $"[default: {string.Join(" ", DefaultBatches)}]",
            AllowMultipleArgumentsPerToken = true,
        };
        var splits = new Option<int[]>("--splits")
        {
            Description = $"split counts along K to try (1-{SplitK.MaxSplits}), space-separated [default: {string.Join(" ", GemmTuner.DefaultSplits)}]",
            AllowMultipleArgumentsPerToken = true,
        };
        var variants = new Option<string[]>("--variants")
        {
            Description = "TMA GEMM variants to try (default: all that run without clusters), e.g. 128x128-barrier 256x128-deep",
            AllowMultipleArgumentsPerToken = true,
            DefaultValueFactory = _ => [],
        };
        var cluster = new Option<bool>("--cluster") { Description = "also try the variants in clusters sharing W by multicast" };
        var iterations = new Option<int>("--iterations") { Description = "timed calls per candidate", DefaultValueFactory = _ => 20 };
        var device = DeviceOption.Create();
        device.Description = "auto (CUDA device 0), cuda or cuda:N (CUDA device N); cpu only to test the tuner, with SMOOTHCACHE_KERNELS=tensorcores, wgmma or wgmma-tma";
        var output = new Option<string>("--out") { Description = "the tuning table to write (JSON)", DefaultValueFactory = _ => "gemm-tuning.json" };
        var json = new Option<string?>("--json") { Description = "also write every candidate's check and time to this JSON file" };
        var command = new Command("tune", "Time the fp16 GEMM variants and splits at a model's shapes on this GPU and write the fastest as a tuning table.")
        {
            model, batches, splits, variants, cluster, iterations, device, output, json,
        };
        command.SetAction(parse =>
        {
            string path = UserErrors.OutputFile("--out", parse.GetValue(output), ".json")!;
            string? jsonPath = UserErrors.OutputFile("--json", parse.GetValue(json), ".json");
            UserErrors.DistinctOutputs(("--out", path), ("--json", jsonPath));
            int count = parse.GetValue(iterations);
            if (count < 1) throw new UserInputException($"--iterations must be at least 1, got {count}");
            int[] batchList = parse.GetResult(batches) is null ? DefaultBatches : parse.GetValue(batches)!;
            if (batchList.Length == 0 || batchList.Any(b => b < 1)) throw new UserInputException($"--batch takes batches of at least 1, got '{string.Join(" ", batchList)}'");
            int[] splitList = parse.GetResult(splits) is null ? GemmTuner.DefaultSplits : parse.GetValue(splits)!;
            if (splitList.Length == 0 || splitList.Any(s => s is < 1 or > SplitK.MaxSplits))
                throw new UserInputException($"--splits takes split counts from 1 to {SplitK.MaxSplits}, got '{string.Join(" ", splitList)}'");
            string[] names = parse.GetValue(variants)!;
            var variantList = names.Length > 0
                ? UserErrors.ParseOption("--variants", () => names.Select(LinearWgmmaTma.Variant.Parse).Distinct().ToArray())
                : GemmTuner.DefaultVariants(parse.GetValue(cluster));
            var deviceChoice = DeviceOption.Resolve(parse, device);
            string modelName = parse.GetValue(model)!;
            // A mistyped model folder is said before the device is asked for.
            if (!modelName.Equals("xl", StringComparison.OrdinalIgnoreCase)) SamplingOptions.ResolveModel(modelName);
            using var backend = Backend.Create(deviceChoice);
            if (Linear.Fp16Kernel(backend) is not { } kernel)
                throw new UserInputException($"tune times the fp16 tensor-core GEMMs, which {backend.DeviceName} does not run with these kernels: " +
                                             "use a CUDA GPU (on the CPU accelerator, for a test, SMOOTHCACHE_KERNELS=tensorcores, wgmma or wgmma-tma)");
            if (names.Length > 0 && !backend.UsesTma)
                throw new UserInputException($"--variants: the fp16 GEMMs here are {kernel}, which has no variants (they are the TMA GEMM's, on an H100 or H200)");
            context.Out.WriteLine($"device: {backend.DeviceName}, fp16 GEMMs on {kernel}");

            using var pipeline = LoadModel(backend, modelName);
            var perBatch = batchList.Distinct().Select(b => (Batch: b, Shapes: GemmTuner.Shapes(pipeline.Transformer, b))).ToArray();
            // The largest first: a run cut short (its table is saved after every shape) has tuned the ones that matter most.
            var shapes = perBatch.SelectMany(p => p.Shapes.Select(s => s.Shape)).DistinctBy(s => (s.M, s.N, s.K))
                .OrderByDescending(s => (long)s.M * s.N * s.K).ToArray();
            context.Out.WriteLine($"{shapes.Length} GEMM shapes in forwards at batch {string.Join(", ", batchList.Distinct())}; " +
                                  $"{(backend.UsesTma ? variantList.Count + " variants x " : "")}splits {string.Join(" ", splitList)}, {count} timed calls each");
            var tried = new List<TunedCandidate>();
            string measured = $"{DateTime.UtcNow:yyyy-MM-dd}: smoothcache tune --model {modelName} --batch {string.Join(" ", batchList)}";
            // Saved after every shape: a run cut short leaves a table of the shapes it finished.
            var table = GemmTuner.Tune(backend, shapes, new GemmTunerSettings(variantList, splitList, count), context.Out, tried, measured, t => AtomicFile.WriteAllText(path, t.ToJson()));

            // What the table saves per forward: each shape's device time times how often the forward runs it.
            foreach (var (batch, batchShapes) in perBatch)
            {
                double builtIn = 0, tuned = 0;
                foreach (var (launch, n) in batchShapes)
                    if (table.Find(launch.M, launch.N, launch.K) is { } choice)
                    {
                        builtIn += n * choice.DefaultMilliseconds;
                        tuned += n * choice.Milliseconds;
                    }
                context.Out.WriteLine($"batch {batch}: fp16 GEMM device time per forward {builtIn:F3} ms built-in, {tuned:F3} ms tuned " +
                                      $"({builtIn / tuned:F2}x), {batchShapes.Sum(s => s.Count)} GEMMs of {batchShapes.Count} shapes");
            }
            AtomicFile.WriteAllText(path, table.ToJson());
            context.Out.WriteLine($"wrote {path}: {table.Gemms.Count} tuned shapes. Use it with SMOOTHCACHE_GEMM_TUNING={path}, or put it in a tuning/ folder " +
                                  "beside the program (or in the repository's tuning/, then rebuild) to make it the default on this device.");
            if (jsonPath is not null)
                BenchJson.Write(jsonPath, new { device = backend.DeviceName, kernel, candidates = tried });
            int failed = tried.Count(c => !c.Passed);
            if (failed > 0) context.Out.WriteLine($"FAIL: {failed} candidates failed their check (none of them was chosen)");
            return failed == 0 ? ExitCodes.Success : ExitCodes.Internal;
        });
        return command;
    }

    private static DiTPipeline LoadModel(Backend backend, string model)
    {
        if (!model.Equals("xl", StringComparison.OrdinalIgnoreCase))
            return DiTPipeline.Load(SamplingOptions.ResolveModel(model), backend, Precision.Fp16);
        using var weights = new SyntheticWeights(SyntheticWeights.XL2_256);
        return DiTPipeline.FromTransformer(new DiTTransformer(backend, SyntheticWeights.XL2_256, weights, Precision.Fp16), SchedulerConfig.DitDefault);
    }
}
