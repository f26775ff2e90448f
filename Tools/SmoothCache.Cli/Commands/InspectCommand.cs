using System.CommandLine;
using System.Globalization;
using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Model.Vae;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Commands;

/// <summary>
/// `smoothcache inspect`: what a model folder holds, read from configs and checkpoint headers only
/// (no weights are loaded): each component's config, tensor and parameter counts, stored dtypes,
/// the transformer's multiply-adds per forward, and the class names. With --check it then loads the
/// whole pipeline on the CPU backend, which checks every tensor's name, shape and dtype as generate would.
/// </summary>
public static class InspectCommand
{
    public static Command Create(CliContext context)
    {
        var model = new Option<string>("--model")
        {
            Description = "diffusers pipeline folder or transformer folder (the default, the embedded dit-digits, is looked up in the working directory, then next to the program)",
            DefaultValueFactory = _ => SamplingOptions.DefaultModel,
        };
        var check = new Option<bool>("--check")
        {
            Description = "also load every weight (on the CPU backend), checking each tensor's name, shape and dtype as generate does (DiT-XL/2: ~10 s, ~6 GB of memory)",
        };
        var command = new Command("inspect", "Describe a model folder: configs, tensors, parameters, dtypes, MACs per forward.") { model, check };
        command.SetAction(parse =>
        {
            string folder = SamplingOptions.ResolveModel(parse.GetValue(model)!);
            Describe(folder, context.Out);
            if (!parse.GetValue(check))
            {
                context.Out.WriteLine("weights: listed from the checkpoint headers, not loaded (--check loads and checks them)");
                return ExitCodes.Success;
            }
            context.Out.WriteLine("checking: loading every weight on the CPU backend...");
            using var backend = Backend.Create(DeviceKind.Cpu);
            using (DiTPipeline.Load(folder, backend)) context.Out.WriteLine("check: every tensor the model needs is there, with the shape and dtype its config asks for");
            return ExitCodes.Success;
        });
        return command;
    }

    private static void Describe(string folder, TextWriter o)
    {
        string index = Path.Combine(folder, "model_index.json");
        bool pipeline = File.Exists(index);
        if (pipeline) DiTPipeline.CheckPipelineClass(index);
        if (!pipeline && !File.Exists(Path.Combine(folder, "config.json")))
            throw DiTPipeline.NotAModelFolder(folder);

        string transformerFolder = pipeline ? Path.Combine(folder, "transformer") : folder;
        string ditConfig = Path.Combine(transformerFolder, "config.json");
        var dit = DiTConfig.Load(ditConfig);
        o.WriteLine($"model: {folder} ({(pipeline ? "diffusers pipeline" : "transformer folder")})");
        using var ditWeights = WeightSources.OpenModelFolder(transformerFolder);
        DiTTransformer.CheckStoredBlocks(dit, ditConfig, ditWeights);
        o.WriteLine($"transformer: {dit.NumLayers} layer{(dit.NumLayers == 1 ? "" : "s")}, {dit.NumHeads} heads x {dit.HeadDim} (width {dit.Width}), " +
            $"patch {dit.PatchSize}, sample {dit.SampleSize} ({dit.Tokens} tokens), channels {dit.InChannels} -> {dit.OutChannels}" +
            $"{(dit.LearnedSigma ? " (learned sigma)" : "")}, {dit.NumClasses} classes");
        DescribeWeights(ditWeights, o);
        int embedders = DiTTransformer.EmbedderCount(dit, ditWeights);
        o.WriteLine($"  MACs per forward: {Giga(DiTTransformer.ForwardMacsOf(dit, 1, embedders))} at batch 1, " +
            $"{Giga(DiTTransformer.ForwardMacsOf(dit, 2, embedders))} at batch 2" +
            (embedders > 1 ? $" ({embedders} conditioning embedders: the blocks' differ)" : ""));
        if (!pipeline) return;

        string vaeFolder = Path.Combine(folder, "vae");
        if (Directory.Exists(vaeFolder))
        {
            var vae = VaeConfig.Load(Path.Combine(vaeFolder, "config.json"));
            o.WriteLine($"vae: block_out_channels [{string.Join(",", vae.BlockOutChannels)}], {vae.LayersPerBlock} layers per block, " +
                $"{vae.NormNumGroups} groups, {vae.LatentChannels} latent channels -> {vae.OutChannels}, upscale x{vae.UpscaleFactor}, " +
                $"scaling factor {vae.ScalingFactor.ToString(CultureInfo.InvariantCulture)}");
            using (var vaeWeights = WeightSources.OpenModelFolder(vaeFolder)) DescribeWeights(vaeWeights, o);
        }
        else o.WriteLine(dit.SamplesArePixels
            ? "vae: none (pixel-space model)"
            : $"vae: none: its {dit.InChannels}-channel samples are latents that a vae/ folder would decode (generate draws channels 1-3)");

        string schedulerPath = Path.Combine(folder, "scheduler", "scheduler_config.json");
        if (File.Exists(schedulerPath))
        {
            var s = SchedulerConfig.Load(schedulerPath);
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"scheduler: {s.ClassName}, {s.NumTrainTimesteps} training steps, {s.BetaSchedule} betas {s.BetaStart}..{s.BetaEnd}, " +
                $"{s.PredictionType} prediction, {s.TimestepSpacing} spacing"));
        }
        else o.WriteLine($"scheduler: none ({SchedulerConfig.DitDefault.ClassName} with DiT's settings is used)");
        int names = DiTPipeline.ReadId2Label(index).Count;
        o.WriteLine(names == 0 ? "id2label: none (classes go by id)" : $"id2label: {names} class name{(names == 1 ? "" : "s")}");
    }

    private static void DescribeWeights(IWeightSource weights, TextWriter o)
    {
        var entries = weights.Names.Select(weights.Describe).ToList();
        var dtypes = entries.GroupBy(e => e.DType).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} x{g.Count()}");
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  weights: {weights.Location}: {entries.Count} tensors, {entries.Sum(e => e.ElementCount):N0} parameters, dtypes {string.Join(", ", dtypes)}"));
    }

    private static string Giga(long macs) => string.Create(CultureInfo.InvariantCulture, $"{macs:N0} ({macs / 1e9:G3} G)");
}
