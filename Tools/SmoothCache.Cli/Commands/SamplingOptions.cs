using System.CommandLine;
using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Commands;

/// <summary>The options shared by generate, calibrate and eval: model, labels, noise, scheduler, device.</summary>
public sealed class SamplingOptions
{
    public const string DefaultModel = "models/dit-digits";

    public Option<string> Model { get; } = new("--model") { Description = "diffusers pipeline folder or transformer folder (the default, the embedded dit-digits, is looked up in the working directory, then next to the program)", DefaultValueFactory = _ => DefaultModel };
    public Option<string?> Labels { get; } = new("--labels") { Description = "comma-separated class ids or names (default: every class up to 10); the class count itself (1000 for ImageNet models) is the null class: an unconditional image" };
    public Option<long> Seed { get; } = new("--seed") { Description = "seed of the noise: the initial noise unless --noise gives it, and ddpm's noise at every step (the project's own generator: not torch.manual_seed)", DefaultValueFactory = _ => 0 };
    public Option<string?> Noise { get; } = new("--noise") { Description = "safetensors file holding initial_noise [B,C,S,S], instead of the seeded initial noise (e.g. a PyTorch run's)" };
    public Option<int> Steps { get; } = new("--steps") { Description = "denoising steps", DefaultValueFactory = _ => 50 };
    public Option<string?> Scheduler { get; } = new("--scheduler") { Description = "ddim, dpm or ddpm (default: the model's scheduler)" };
    public Option<float> Guidance { get; } = new("--guidance") { Description = "classifier-free guidance scale (<= 1 disables it)", DefaultValueFactory = _ => 4f };
    public Option<string> Device { get; } = DeviceOption.Create();
    public Option<string> Precision { get; } = new("--precision") { Description = "fp32, or fp16 (float16 weights and GEMM inputs, float32 accumulation; tensor cores on CUDA)", DefaultValueFactory = _ => "fp32" };

    public void AddTo(System.CommandLine.Command command)
    {
        foreach (var option in new Option[] { Model, Labels, Seed, Noise, Steps, Scheduler, Guidance, Device, Precision })
            command.Add(option);
    }

    public ResolvedSampling Resolve(ParseResult parse)
    {
        int steps = ResolveSteps(parse);
        float guidance = parse.GetValue(Guidance);
        if (!float.IsFinite(guidance) || guidance < 0) throw new UserInputException($"--guidance must be a finite number >= 0, got {guidance}");
        string? scheduler = parse.GetValue(Scheduler)?.ToLowerInvariant();
        if (scheduler is not (null or "ddim" or "dpm" or "ddpm"))
            throw new UserInputException($"--scheduler '{scheduler}' is unknown: expected ddim, dpm or ddpm");
        var device = DeviceOption.Resolve(parse, Device);
        var precision = UserErrors.ParseOption("--precision", () => HalfConversion.ParsePrecision(parse.GetValue(Precision)!));
        var resolved = new ResolvedSampling(ResolveModel(parse.GetValue(Model)!), parse.GetValue(Labels), parse.GetValue(Seed),
            parse.GetResult(Seed) is { Implicit: false }, parse.GetValue(Noise), steps, scheduler, guidance, device, precision);
        if (scheduler is not null) resolved.CheckSeedBesideNoise(scheduler); // before loading; else once the model names it
        return resolved;
    }

    /// <summary>--steps, checked.</summary>
    public int ResolveSteps(ParseResult parse)
    {
        int steps = parse.GetValue(Steps);
        return steps >= 1 ? steps : throw new UserInputException($"--steps must be at least 1, got {steps}");
    }

    /// <summary>The default model is looked up in the working directory, then next to the program.</summary>
    public static string ResolveModel(string model)
    {
        if (model == DefaultModel && !Directory.Exists(model))
        {
            string beside = Path.Combine(AppContext.BaseDirectory, DefaultModel);
            if (Directory.Exists(beside)) return beside;
        }
        if (PathProblems.ForFolder(model) is { } problem) throw new UserInputException($"--model: '{model}': {problem}");
        return model;
    }
}

public sealed record ResolvedSampling(string ModelFolder, string? Labels, long Seed, bool SeedGiven, string? NoiseFile, int Steps,
    string? Scheduler, float Guidance, DeviceChoice Device, Precision Precision)
{
    /// <summary>The tensor a --noise file holds the initial latents in.</summary>
    public const string NoiseTensor = "initial_noise";

    /// <summary>A warning where a generation's final latents are not all finite (NaN or infinite weights, or a model that
    /// diverged): the images drawn from them mean nothing, though the command succeeds. Null where they are.</summary>
    public string? NonFiniteWarning(GenerationResult result)
    {
        int count = result.Latents.Count(v => !float.IsFinite(v));
        return count == 0 ? null
            : $"{count} of the {result.Latents.Length} final latent values are NaN or infinite: the images are meaningless " +
              $"(NaN or infinite weights in {ModelFolder}? or a sampling that diverged, e.g. at a huge --guidance)";
    }

    /// <summary>ddpm draws noise at every step from the seed; the other schedulers would ignore a seed beside a noise file.</summary>
    public void CheckSeedBesideNoise(string scheduler)
    {
        if (SeedGiven && NoiseFile is not null && scheduler != "ddpm")
            throw new UserInputException($"--seed and --noise exclude each other with {scheduler}: the noise file replaces the seeded noise " +
                                         "(only ddpm also draws noise at every step, from --seed)");
    }

    public GenerationOptions ToGenerationOptions(DiTPipeline pipeline)
    {
        var labels = Labels is null ? pipeline.DefaultLabels() : UserErrors.ParseOption("--labels", () => pipeline.ParseLabels(Labels));
        if (Steps > pipeline.SchedulerConfig.NumTrainTimesteps)
            throw new UserInputException($"--steps {Steps} is more than the scheduler's num_train_timesteps ({pipeline.SchedulerConfig.NumTrainTimesteps})");
        string scheduler = Scheduler ?? pipeline.DefaultSchedulerKind;
        CheckSeedBesideNoise(scheduler);
        float[]? noise = null;
        if (NoiseFile is not null)
        {
            using var file = SafetensorsFile.Open(NoiseFile);
            if (!file.Contains(NoiseTensor))
                throw new UserInputException($"--noise {NoiseFile}: no tensor '{NoiseTensor}' [B,C,S,S]; the file holds " +
                                             (file.Names.Count == 0 ? "none" : string.Join(", ", file.Names.Order().Take(8).Select(n => $"'{n}'")) +
                                                                           (file.Names.Count > 8 ? $" and {file.Names.Count - 8} more" : "")));
            noise = file.ReadFloat32(NoiseTensor, pipeline.LatentShape(labels.Length));
            int bad = Array.FindIndex(noise, v => !float.IsFinite(v));
            if (bad >= 0) throw new UserInputException($"--noise {NoiseFile}: {NoiseTensor}[{bad}] is {noise[bad]}: expected finite values");
        }
        return new GenerationOptions
        {
            Labels = labels, Steps = Steps, Scheduler = scheduler,
            GuidanceScale = Guidance, Seed = Seed, InitialNoise = noise,
        };
    }
}
