using System.Diagnostics;
using System.Text.Json;
using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Sampling;

/// <summary>What to generate. Labels are class ids; noise comes from <see cref="Seed"/> unless
/// <see cref="InitialNoise"/> ([B, C, S, S] flattened) is given.</summary>
public sealed record GenerationOptions
{
    public required int[] Labels { get; init; }
    public int Steps { get; init; } = 50;
    /// <summary>ddim, dpm or ddpm; null uses the model's scheduler config.</summary>
    public string? Scheduler { get; init; }
    /// <summary>Classifier-free guidance scale; at or below 1 guidance is off.</summary>
    public float GuidanceScale { get; init; } = 4f;
    public long Seed { get; init; }
    public float[]? InitialNoise { get; init; }
    /// <summary>Runs the transformer's components for this generation (a cache or calibration helper).</summary>
    public IComponentHook? Hook { get; init; }
}

/// <summary>Reported after every denoising step; <see cref="Latents"/> is only valid during the call.</summary>
public readonly record struct StepInfo(int Index, int Count, int Timestep, Tensor Latents);

public sealed record GenerationResult(
    float[] Latents, int[] LatentShape, float[] Images, int[] ImageShape, TimeSpan Elapsed);

/// <summary>
/// Class-conditional sampling with a DiT, as diffusers' DiTPipeline (DESIGN §5): per timestep the
/// transformer sees [x; x] with labels [y; null], eps = u + g (c - u) on the first C channels, and the
/// scheduler steps x. Latent models decode through the VAE; pixel-space models (dit-digits) output
/// clamp(x / 2 + 0.5, 0, 1) directly. Everything stays on the device inside the loop.
/// </summary>
public sealed class DiTPipeline : IDisposable
{
    public Backend Backend { get; }
    public DiTTransformer Transformer { get; }
    public SchedulerConfig SchedulerConfig { get; }
    /// <summary>Class names by id, from model_index.json (empty when the folder has none).</summary>
    public IReadOnlyDictionary<int, string> Id2Label { get; }
    public string Folder { get; }

    private DiTPipeline(Backend backend, string folder, DiTTransformer transformer, SchedulerConfig scheduler,
        IReadOnlyDictionary<int, string> id2Label)
    {
        Backend = backend;
        Folder = folder;
        Transformer = transformer;
        SchedulerConfig = scheduler;
        Id2Label = id2Label;
    }

    /// <summary>
    /// Loads a diffusers pipeline folder (model_index.json, transformer/, optional scheduler/) or a bare
    /// transformer folder (config.json + weights).
    /// </summary>
    public static DiTPipeline Load(string folder, Backend backend, Precision precision = Precision.Fp32)
    {
        if (!Directory.Exists(folder))
            throw new CheckpointNotFoundException(folder, "model folder not found");
        string index = Path.Combine(folder, "model_index.json");
        if (File.Exists(index))
        {
            var id2Label = ReadId2Label(index);
            string schedulerPath = Path.Combine(folder, "scheduler", "scheduler_config.json");
            var scheduler = File.Exists(schedulerPath) ? SchedulerConfig.Load(schedulerPath) : SchedulerConfig.DitDefault;
            var transformer = DiTTransformer.Load(backend, Path.Combine(folder, "transformer"), precision);
            return new DiTPipeline(backend, folder, transformer, scheduler, id2Label);
        }
        if (File.Exists(Path.Combine(folder, "config.json")))
            return new DiTPipeline(backend, folder, DiTTransformer.Load(backend, folder, precision), SchedulerConfig.DitDefault,
                new Dictionary<int, string>());
        throw new CheckpointNotFoundException(folder,
            "not a model folder: expected model_index.json (a diffusers pipeline) or config.json (a transformer)");
    }

    /// <summary>
    /// A pipeline around a transformer built in memory (e.g. from synthetic weights, for benchmarks);
    /// it takes ownership of the transformer.
    /// </summary>
    public static DiTPipeline FromTransformer(DiTTransformer transformer, SchedulerConfig scheduler) =>
        new(transformer.Backend, "(in memory)", transformer, scheduler, new Dictionary<int, string>());

    private static Dictionary<int, string> ReadId2Label(string path)
    {
        var map = new Dictionary<int, string>();
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (doc.RootElement.TryGetProperty("id2label", out var labels) && labels.ValueKind == JsonValueKind.Object)
                foreach (var p in labels.EnumerateObject())
                    if (int.TryParse(p.Name, out int id) && p.Value.ValueKind == JsonValueKind.String)
                        map[id] = p.Value.GetString()!;
        }
        catch (JsonException e)
        {
            throw new ModelConfigException(path, "(json)", $"not valid JSON: {e.Message}");
        }
        return map;
    }

    /// <summary>ddim, dpm or ddpm, from the class named in the model's scheduler config.</summary>
    public string DefaultSchedulerKind => SchedulerConfig.ClassName switch
    {
        SchedulerConfig.DpmSolverClass => "dpm",
        SchedulerConfig.DdpmClass => "ddpm",
        _ => "ddim",
    };

    /// <summary>The default labels: every class up to 10.</summary>
    public int[] DefaultLabels() => Enumerable.Range(0, Math.Min(10, Transformer.Config.NumClasses)).ToArray();

    /// <summary>
    /// Parses comma-separated class ids or class names (as in id2label, case-insensitive; a name may
    /// match several comma-separated synonyms of one entry). Throws ArgumentException naming the bad item.
    /// </summary>
    public int[] ParseLabels(string spec)
    {
        var result = new List<int>();
        foreach (var raw in spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (int.TryParse(raw, out int id))
            {
                if (id < 0 || id >= Transformer.Config.NumClasses)
                    throw new ArgumentException($"label {id} is outside [0, {Transformer.Config.NumClasses})");
                result.Add(id);
                continue;
            }
            var match = Id2Label.Where(kv => kv.Value.Split(',', StringSplitOptions.TrimEntries)
                    .Any(n => n.Equals(raw, StringComparison.OrdinalIgnoreCase)) || kv.Value.Equals(raw, StringComparison.OrdinalIgnoreCase))
                .Select(kv => (int?)kv.Key).FirstOrDefault();
            result.Add(match ?? throw new ArgumentException(
                $"label '{raw}' is neither a class id nor a class name of this model"));
        }
        if (result.Count == 0) throw new ArgumentException("no labels given");
        return result.ToArray();
    }

    public int[] LatentShape(int batch)
    {
        var c = Transformer.Config;
        return [batch, c.InChannels, c.SampleSize, c.SampleSize];
    }

    public GenerationResult Generate(GenerationOptions options, Action<StepInfo>? onStep = null)
    {
        var config = Transformer.Config;
        if (options.Steps < 1) throw new ArgumentOutOfRangeException(nameof(options), $"steps must be at least 1, got {options.Steps}");
        if (options.GuidanceScale < 0) throw new ArgumentOutOfRangeException(nameof(options), $"guidance must be >= 0, got {options.GuidanceScale}");
        int b = options.Labels.Length;
        if (b == 0) throw new ArgumentException("no labels given");
        foreach (int y in options.Labels)
            if (y < 0 || y >= config.NumClasses)
                throw new ArgumentOutOfRangeException(nameof(options), $"label {y} is outside [0, {config.NumClasses})");
        var shape = LatentShape(b);
        long count = Tensor.ElementCount(shape);
        var noise = options.InitialNoise ?? GaussianNoise.Sample(options.Seed, 0, count);
        if (noise.Length != count)
            throw new ArgumentException($"initial noise has {noise.Length} values, expected {count} for [{string.Join(",", shape)}]");

        var scheduler = NoiseScheduler.Create(options.Scheduler ?? DefaultSchedulerKind, SchedulerConfig, options.Steps);
        bool guided = options.GuidanceScale > 1;
        int[] labels = guided ? [.. options.Labels, .. Enumerable.Repeat(config.NullClass, b)] : options.Labels;
        var timer = Stopwatch.StartNew();
        var previousHook = Transformer.Hook;
        if (options.Hook is not null) Transformer.Hook = options.Hook;
        try
        {
            var arena = Backend.Arena;
            using var x = arena.Upload(noise, shape);
            using var dataPrediction = arena.Zeros(shape);
            var timesteps = scheduler.Timesteps;
            for (int i = 0; i < timesteps.Length; i++)
            {
                var t = Enumerable.Repeat((float)timesteps[i], labels.Length).ToArray();
                using (var input = guided ? RepeatBatch.Run(x, 2) : x.Share())
                using (var output = Transformer.Forward(input, t, labels))
                using (var eps = Guidance.Run(output, config.InChannels, options.GuidanceScale, guided))
                using (var z = scheduler.NeedsNoise ? arena.Upload(GaussianNoise.Sample(options.Seed, 1 + i, count), shape) : null)
                    SchedulerStep.Apply(Backend, scheduler.Step(i), x, eps, dataPrediction, z);
                onStep?.Invoke(new StepInfo(i, timesteps.Length, timesteps[i], x));
            }
            var latents = x.ToArray();
            var (images, imageShape) = ToImages(latents, shape);
            return new GenerationResult(latents, shape, images, imageShape, timer.Elapsed);
        }
        finally
        {
            Transformer.Hook = previousHook;
        }
    }

    /// <summary>Pixel-space output: NCHW in [-1, 1] to NHWC clamp(x / 2 + 0.5, 0, 1).</summary>
    private static (float[] Images, int[] Shape) ToImages(float[] x, int[] shape)
    {
        int b = shape[0], c = shape[1], h = shape[2], w = shape[3];
        var images = new float[x.Length];
        for (int n = 0; n < b; n++)
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < h * w; i++)
                    images[(n * h * w + i) * c + ch] = Math.Clamp(x[(n * c + ch) * h * w + i] / 2f + 0.5f, 0f, 1f);
        return (images, [b, h, w, c]);
    }

    public void Dispose() => Transformer.Dispose();
}
