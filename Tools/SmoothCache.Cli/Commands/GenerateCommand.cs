using System.CommandLine;
using SmoothCache.Caching;
using SmoothCache.Cli.Output;
using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Commands;

/// <summary>`smoothcache generate`: one image per label, written as a labelled PNG grid (DESIGN §8).</summary>
public static class GenerateCommand
{
    public static Command Create(CliContext context)
    {
        var options = new SamplingOptions();
        var output = new Option<string>("--out") { Description = "PNG grid to write", DefaultValueFactory = _ => "samples.png" };
        var saveLatents = new Option<string?>("--save-latents") { Description = "safetensors file for the final latents [B,C,S,S] (before the VAE and clamping)" };
        var saveImages = new Option<string?>("--save-images") { Description = "safetensors file for the images [B,H,W,C] in [0,1]" };
        var schedule = new Option<string?>("--schedule") { Description = "SmoothCache schedule JSON (1 = compute, 0 = reuse)" };
        var stats = new Option<bool>("--stats") { Description = "print per-component computed/reused calls and MACs" };
        var command = new Command("generate", "Draw images from a DiT model (default: one per class of the embedded digits model).");
        options.AddTo(command);
        command.Add(output);
        command.Add(saveLatents);
        command.Add(saveImages);
        command.Add(schedule);
        command.Add(stats);
        command.SetAction(parse =>
        {
            var run = options.Resolve(parse);
            string png = UserErrors.OutputFile("--out", parse.GetValue(output), ".png")!;
            string? latentsPath = UserErrors.OutputFile("--save-latents", parse.GetValue(saveLatents), ".safetensors");
            string? imagesPath = UserErrors.OutputFile("--save-images", parse.GetValue(saveImages), ".safetensors");
            UserErrors.DistinctOutputs(("--out", png), ("--save-latents", latentsPath), ("--save-images", imagesPath));
            var cacheSchedule = parse.GetValue(schedule) is { } schedulePath ? CacheSchedule.Load(schedulePath) : null;
            using var backend = Backend.Create(run.Device);
            using var pipeline = DiTPipeline.Load(run.ModelFolder, backend, run.Precision);
            var generation = run.ToGenerationOptions(pipeline);
            foreach (var warning in pipeline.LabelWarnings(generation.Labels))
                context.Error.WriteLine($"warning: {warning}");
            if (pipeline.Vae is null && !pipeline.Transformer.Config.SamplesArePixels)
                context.Error.WriteLine($"warning: {run.ModelFolder} has no vae/ folder to decode its {pipeline.Transformer.Config.InChannels}-channel " +
                                        "latents: the PNG draws their first 3 channels as RGB (--save-latents keeps them all)");
            if (cacheSchedule is not null)
                foreach (var warning in cacheSchedule.Validate(pipeline.Transformer.NumBlocks, generation.Steps))
                    context.Error.WriteLine($"warning: {warning}");
            using var cache = cacheSchedule is null ? null : SmoothCacheHelper.Enable(pipeline.Transformer, cacheSchedule);
            var result = Progress.Run(context, $"generate {generation.Labels.Length} image{(generation.Labels.Length == 1 ? "" : "s")}", generation.Steps,
                report => pipeline.Generate(generation, step => report(step.Index + 1)));

            if (run.NonFiniteWarning(result) is { } nonFinite) context.Error.WriteLine($"warning: {nonFinite}");
            var names = generation.Labels.Select(l => l == pipeline.Transformer.Config.NullClass ? "unconditional"
                : pipeline.Id2Label.GetValueOrDefault(l, l.ToString())).ToArray();
            ImageGrid.SavePng(png, result.Images, result.ImageShape, names);
            if (latentsPath is not null)
                SafetensorsWriter.Write(latentsPath, [("latents", result.LatentShape, result.Latents)]);
            if (imagesPath is not null)
                SafetensorsWriter.Write(imagesPath, [("images", result.ImageShape, result.Images)]);
            if (parse.GetValue(stats))
            {
                var batch = generation.Labels.Length * (generation.GuidanceScale > 1 ? 2 : 1);
                var cacheStats = cache?.Stats(CachingOptions.MacsPerCall(pipeline.Transformer, batch))
                    ?? new CacheStats([]);
                context.Out.WriteLine(CachingOptions.StatsReport(cacheStats, pipeline.Transformer, generation));
            }
            int images = generation.Labels.Length, steps = generation.Steps;
            context.Out.WriteLine($"wrote {png}: {images} image{(images == 1 ? "" : "s")}, {generation.Scheduler} {steps} step{(steps == 1 ? "" : "s")}, " +
                $"guidance {generation.GuidanceScale}, {HalfConversion.PrecisionName(run.Precision)}, {result.Elapsed.TotalSeconds:F2} s on {backend.DeviceName}");
            return ExitCodes.Success;
        });
        return command;
    }
}
