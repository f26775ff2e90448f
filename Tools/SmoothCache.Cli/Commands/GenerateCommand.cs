using System.CommandLine;
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
        var command = new Command("generate", "Draw images from a DiT model (default: one per class of the embedded digits model).");
        options.AddTo(command);
        command.Add(output);
        command.Add(saveLatents);
        command.Add(saveImages);
        command.SetAction(parse =>
        {
            var run = options.Resolve(parse);
            using var backend = Backend.Create(run.Device);
            using var pipeline = DiTPipeline.Load(run.ModelFolder, backend);
            var generation = run.ToGenerationOptions(pipeline);
            string png = parse.GetValue(output)!;
            var result = Progress.Run(context, $"generate {generation.Labels.Length} images", generation.Steps,
                report => pipeline.Generate(generation, step => report(step.Index + 1)));

            var names = generation.Labels.Select(l => pipeline.Id2Label.GetValueOrDefault(l, l.ToString())).ToArray();
            ImageGrid.SavePng(png, result.Images, result.ImageShape, names);
            if (parse.GetValue(saveLatents) is { } latentsPath)
                SafetensorsWriter.Write(latentsPath, [("latents", result.LatentShape, result.Latents)]);
            if (parse.GetValue(saveImages) is { } imagesPath)
                SafetensorsWriter.Write(imagesPath, [("images", result.ImageShape, result.Images)]);
            context.Out.WriteLine($"wrote {png}: {generation.Labels.Length} images, {generation.Scheduler} {generation.Steps} steps, " +
                $"guidance {generation.GuidanceScale}, {result.Elapsed.TotalSeconds:F2} s on {backend.DeviceName}");
            return ExitCodes.Success;
        });
        return command;
    }
}
