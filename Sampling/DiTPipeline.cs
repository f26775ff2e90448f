using System.Diagnostics;
using System.Text.Json;
using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Model.Vae;

namespace SmoothCache.Sampling;

/// <summary>What to generate. Labels are class ids; noise comes from <see cref="Seed"/> unless
/// <see cref="InitialNoise"/> ([B, C, S, S] flattened) is given.</summary>
public sealed record GenerationOptions
{
    /// <summary>One class id per image, each in [0, num_embeds_ada_norm), or num_embeds_ada_norm itself, the null class
    /// guidance contrasts with, for an unconditional image (as in diffusers' DiTPipeline, where 1000 is the null class);
    /// <see cref="DiTPipeline.ParseLabels"/> reads names too. The batch is this many images.</summary>
    public required int[] Labels { get; init; }
    /// <summary>Denoising steps, 1 up to the scheduler's num_train_timesteps (dpm: one fewer).</summary>
    public int Steps { get; init; } = 50;
    /// <summary>ddim, dpm or ddpm; null uses the model's scheduler config.</summary>
    public string? Scheduler { get; init; }
    /// <summary>Classifier-free guidance scale; at or below 1 guidance is off.</summary>
    public float GuidanceScale { get; init; } = 4f;
    /// <summary>Seeds the initial noise (and ddpm's noise at every step); the same seed gives the same images.</summary>
    public long Seed { get; init; }
    /// <summary>The initial latents [B, C, S, S] flattened, instead of noise drawn from <see cref="Seed"/>.</summary>
    public float[]? InitialNoise { get; init; }
    /// <summary>Runs the transformer's components for this generation (a cache or calibration helper).</summary>
    public IComponentHook? Hook { get; init; }
}

/// <summary>Reported after every denoising step; <see cref="Latents"/> is only valid during the call.</summary>
/// <param name="Index">the step just taken, 0 .. Count - 1</param>
/// <param name="Count">the generation's steps</param>
/// <param name="Timestep">the training timestep the step denoised from (the noisiest first)</param>
/// <param name="Latents">the latents after the step, [B, C, S, S] on the device; read them (ToArray) during the call, as the
/// generation goes on updating and then returns them (a later read throws ObjectDisposedException)</param>
public readonly record struct StepInfo(int Index, int Count, int Timestep, Tensor Latents);

/// <summary>A generation's final latents [B, C, S, S] and images [B, H, W, C] in [0, 1] (NHWC, as diffusers returns them
/// with output_type "np"). The arrays are the caller's; as a record's members they compare by reference, so compare
/// results by their contents (e.g. SequenceEqual).</summary>
/// <param name="Latents">the final latents, flattened</param>
/// <param name="LatentShape">[B, C, S, S]: images, latent channels, latent size</param>
/// <param name="Images">the images in [0, 1], flattened NHWC: image n's pixels row by row, each pixel's channels together</param>
/// <param name="ImageShape">[B, H, W, C]: images, height, width, channels (3, or 1 for the digits model)</param>
/// <param name="Elapsed">wall time of the generation, read-backs included</param>
public sealed record GenerationResult(
    float[] Latents, int[] LatentShape, float[] Images, int[] ImageShape, TimeSpan Elapsed)
{
    /// <summary>Image <paramref name="n"/> as 8-bit values, rows of pixels of ImageShape[3] channels (HWC), quantised as
    /// diffusers' numpy_to_pil does: round(v * 255), halves to even. What an image library's RGB or grey bitmap takes.</summary>
    public byte[] ImageBytes(int n)
    {
        if (n < 0 || n >= ImageShape[0])
            throw new ArgumentOutOfRangeException(nameof(n), $"image {n} of {ImageShape[0]}");
        int size = ImageShape[1] * ImageShape[2] * ImageShape[3];
        var bytes = new byte[size];
        for (int i = 0; i < size; i++) bytes[i] = ToByte(Images[n * size + i]);
        return bytes;
    }

    /// <summary>A value in [0, 1] as 8 bits: round(v * 255), halves to even (numpy's round); outside [0, 1] clamped.</summary>
    public static byte ToByte(float v) => (byte)Math.Round(Math.Clamp(v, 0f, 1f) * 255f);
}

/// <summary>
/// Class-conditional sampling with a DiT, as diffusers' DiTPipeline (DESIGN §5): per timestep the
/// transformer sees [x; x] with labels [y; null], eps = u + g (c - u) on the first C channels, and the
/// scheduler steps x. Latent models (a vae/ folder beside transformer/) decode x / scaling_factor
/// through the VAE; pixel-space models (dit-digits) use x itself. Either way the images are
/// clamp(img / 2 + 0.5, 0, 1) in NHWC. Everything stays on the device until the final copies.
/// One generation at a time: a call from a second thread while one runs throws (<see cref="Backend.Claim"/>).
/// The pipeline owns its transformer, VAE and recordings, not its backend.
/// </summary>
public sealed class DiTPipeline : IDisposable
{
    private readonly List<RecordedGeneration> _recordings = new();
    private int _disposed; // 1 once Dispose began; a generation on another thread reads it and stops at its next step
    private bool _running;

    private bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The device everything runs on; the caller's, disposed after the pipeline.</summary>
    public Backend Backend { get; }
    /// <summary>The denoising model (owned by the pipeline: do not dispose it yourself).</summary>
    public DiTTransformer Transformer { get; }
    /// <summary>The VAE decoder of a latent model; null for pixel-space models.</summary>
    public VaeDecoder? Vae { get; }
    /// <summary>The scheduler/scheduler_config.json read, or DiT's default where the folder has none.</summary>
    public SchedulerConfig SchedulerConfig { get; }
    /// <summary>Class names by id, from model_index.json (empty when the folder has none).</summary>
    public IReadOnlyDictionary<int, string> Id2Label { get; }
    /// <summary>The folder loaded ("(in memory)" for <see cref="FromTransformer"/>).</summary>
    public string Folder { get; }

    private DiTPipeline(Backend backend, string folder, DiTTransformer transformer, VaeDecoder? vae,
        SchedulerConfig scheduler, IReadOnlyDictionary<int, string> id2Label)
    {
        Backend = backend;
        Folder = folder;
        Transformer = transformer;
        Vae = vae;
        SchedulerConfig = scheduler;
        Id2Label = id2Label;
    }

    /// <summary>
    /// Loads a diffusers pipeline folder (model_index.json, transformer/, optional scheduler/ and vae/)
    /// or a bare transformer folder (config.json + weights). <paramref name="precision"/> applies to the transformer and
    /// the VAE (<see cref="Precision"/>).
    /// </summary>
    public static DiTPipeline Load(string folder, Backend backend, Precision precision = Precision.Fp32)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        ArgumentNullException.ThrowIfNull(backend);
        if (PathProblems.ForFolder(folder) is { } problem) throw new CheckpointNotFoundException(folder, $"model {problem}");
        string index = Path.Combine(folder, "model_index.json");
        if (File.Exists(index))
        {
            CheckPipelineClass(index);
            var id2Label = ReadId2Label(index);
            string schedulerPath = Path.Combine(folder, "scheduler", "scheduler_config.json");
            var scheduler = File.Exists(schedulerPath) ? SchedulerConfig.Load(schedulerPath) : SchedulerConfig.DitDefault;
            string vaeFolder = Path.Combine(folder, "vae");
            // One claim for both models and for disposing them on a failure: another thread's work waits, or is refused.
            using var loading = backend.ClaimWhenFree("DiTPipeline.Load");
            // The VAE's config and weights are checked first: they are quick to read and fail early.
            var vae = Directory.Exists(vaeFolder) ? VaeDecoder.Load(backend, vaeFolder, precision) : null;
            try
            {
                var transformer = DiTTransformer.Load(backend, Path.Combine(folder, "transformer"), precision);
                if (vae is not null && vae.Config.LatentChannels != transformer.Config.InChannels)
                {
                    transformer.Dispose();
                    throw new ModelConfigException(Path.Combine(vaeFolder, "config.json"), "latent_channels",
                        $"{vae.Config.LatentChannels} does not match the transformer's in_channels {transformer.Config.InChannels}");
                }
                int classes = transformer.Config.NumClasses;
                if (id2Label.Keys.Where(id => id >= classes).Order().FirstOrDefault(-1) is var past and >= 0)
                {
                    transformer.Dispose();
                    throw new ModelConfigException(index, "id2label", $"class id {past} is past the transformer's {classes} classes (its num_embeds_ada_norm)");
                }
                return new DiTPipeline(backend, folder, transformer, vae, scheduler, id2Label);
            }
            catch
            {
                vae?.Dispose();
                throw;
            }
        }
        if (File.Exists(Path.Combine(folder, "config.json")))
            return new DiTPipeline(backend, folder, DiTTransformer.Load(backend, folder, precision), null,
                SchedulerConfig.DitDefault, new Dictionary<int, string>());
        throw NotAModelFolder(folder);
    }

    /// <summary>The error for a folder with neither model_index.json nor config.json, pointing at a transformer folder inside.</summary>
    public static CheckpointNotFoundException NotAModelFolder(string folder) => new(folder,
        "not a model folder: expected model_index.json (a diffusers pipeline) or config.json (a transformer)" +
        (File.Exists(Path.Combine(folder, "transformer", "config.json")) ? $"; its transformer/ folder is one: {Path.Combine(folder, "transformer")}" : ""));

    /// <summary>
    /// A pipeline around a transformer built in memory (e.g. from synthetic weights, for benchmarks);
    /// it takes ownership of the transformer.
    /// </summary>
    public static DiTPipeline FromTransformer(DiTTransformer transformer, SchedulerConfig scheduler)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        ArgumentNullException.ThrowIfNull(scheduler);
        return new(transformer.Backend, "(in memory)", transformer, null, scheduler, new Dictionary<int, string>());
    }

    /// <summary>Throws where a model_index.json names a pipeline other than diffusers' DiTPipeline (e.g. a Stable Diffusion
    /// folder, whose unet/ this library cannot run).</summary>
    public static void CheckPipelineClass(string path) => ConfigJson.Load(path, (root, _) =>
    {
        string? name = root.ValueKind == JsonValueKind.Object ? ConfigJson.OptionalString(root, "_class_name", path) : null;
        if (name is not null and not "DiTPipeline")
            throw new ModelConfigException(path, "_class_name", $"'{name}' is not a DiT pipeline (expected DiTPipeline)");
        return name;
    });

    /// <summary>The id2label map of a model_index.json (empty when it has none).</summary>
    public static Dictionary<int, string> ReadId2Label(string path) => ConfigJson.Load(path, (root, _) =>
    {
        var map = new Dictionary<int, string>();
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("id2label", out var labels) || labels.ValueKind == JsonValueKind.Null)
            return map;
        const string expected = "expected an object of class ids to names, e.g. {\"0\": \"tench, Tinca tinca\"}";
        if (labels.ValueKind != JsonValueKind.Object) throw new ModelConfigException(path, "id2label", $"{expected}, found {labels.ValueKind}");
        foreach (var p in labels.EnumerateObject())
        {
            if (!int.TryParse(p.Name, out int id) || id < 0 || p.Value.ValueKind != JsonValueKind.String)
                throw new ModelConfigException(path, "id2label", $"{expected}, found \"{p.Name}\": {p.Value.GetRawText()}");
            map[id] = p.Value.GetString()!;
        }
        return map;
    });

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
    /// Parses comma-separated class ids or class names. A name is a whole id2label entry or one of its
    /// comma-separated synonyms, case-insensitive: ImageNet's "tench, Tinca tinca" is class 0 whether
    /// written whole or as "tench". Where the items could be read as one whole entry, that reading wins
    /// (the longest run of items first). Throws ArgumentException naming the bad or ambiguous item.
    /// </summary>
    public int[] ParseLabels(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string[] items = spec.Trim().Length == 0 ? [] : spec.Split(',', StringSplitOptions.TrimEntries);
        if (Array.IndexOf(items, "") is var empty and >= 0)
            throw new ArgumentException($"labels '{spec}': entry {empty + 1} is empty (a stray comma?)", nameof(spec));
        var byEntry = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var bySynonym = new Dictionary<string, List<int>>(StringComparer.OrdinalIgnoreCase);
        int mostSynonyms = 1; // the most an entry has: no run of more items can be one entry
        foreach (var (id, name) in Id2Label.OrderBy(kv => kv.Key))
        {
            var synonyms = name.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            byEntry.TryAdd(string.Join(",", synonyms), id);
            mostSynonyms = Math.Max(mostSynonyms, synonyms.Length);
            foreach (var synonym in synonyms.Distinct(StringComparer.OrdinalIgnoreCase))
            {
                if (!bySynonym.TryGetValue(synonym, out var ids)) bySynonym[synonym] = ids = [];
                ids.Add(id);
            }
        }

        var result = new List<int>();
        for (int i = 0; i < items.Length;)
        {
            int taken = 0;
            for (int n = Math.Min(items.Length - i, mostSynonyms); n >= 2 && taken == 0; n--)
                if (byEntry.TryGetValue(string.Join(",", items, i, n), out int whole))
                {
                    result.Add(whole);
                    taken = n;
                }
            if (taken == 0)
            {
                result.Add(ParseOne(items[i], bySynonym));
                taken = 1;
            }
            i += taken;
        }
        if (result.Count == 0) throw new ArgumentException("no labels given", nameof(spec));
        return result.ToArray();
    }

    /// <summary>
    /// What is odd about these labels for this model, one line each: class ids that have no id2label name where the
    /// model names some of its classes (the embedded digits model names 10 of its 1000 class embeddings; the rest were
    /// never trained, and draw noise). Empty when the model names none.
    /// </summary>
    public IEnumerable<string> LabelWarnings(IEnumerable<int> labels)
    {
        if (Id2Label.Count == 0) yield break;
        var unnamed = labels.Distinct().Where(label => !Id2Label.ContainsKey(label) && label != Transformer.Config.NullClass).ToArray();
        if (unnamed.Length > 0)
            yield return $"no id2label name for class {string.Join(", ", unnamed)} (the model names {Id2Label.Count} of its " +
                         $"{Transformer.Config.NumClasses} classes): it may never have been trained on it";
    }

    private int ParseOne(string item, Dictionary<string, List<int>> bySynonym)
    {
        if (long.TryParse(item, out long id))
            return id >= 0 && id <= Transformer.Config.NullClass ? (int)id : throw new ArgumentException(LabelOutOfRange(id), "spec");
        if (!bySynonym.TryGetValue(item, out var ids))
            throw new ArgumentException($"label '{item}' is neither a class id nor a class name of this model", "spec");
        if (ids.Count > 1)
            throw new ArgumentException($"label '{item}' names several classes ({string.Join("; ", ids.Select(i => $"{i} '{Id2Label[i]}'"))}): give the class id", "spec");
        return ids[0];
    }

    private string LabelOutOfRange(long label) =>
        $"label {label} is outside [0, {Transformer.Config.NumClasses}): a class id, or {Transformer.Config.NullClass} (the null class) " +
        "for an unconditional image";

    /// <summary>The most images one generation takes (<see cref="DiTTransformer.MaxBatch"/> rows a forward, two an image
    /// under guidance, and what the VAE decodes at once): the kernels index activations in 32 bits.</summary>
    public int MaxImages(bool guided)
    {
        int images = Transformer.MaxBatch / (guided ? 2 : 1);
        return Vae is null ? images : (int)Math.Min(images, int.MaxValue / Vae.Config.LargestActivation(Transformer.Config.SampleSize));
    }

    /// <summary>The latent shape [B, C, S, S] of a batch of <paramref name="batch"/> images.</summary>
    public int[] LatentShape(int batch)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        var c = Transformer.Config;
        return [batch, c.InChannels, c.SampleSize, c.SampleSize];
    }

    /// <summary>Runs a whole generation: the denoising steps, then the decode. The transformer's hook (the options' or an
    /// enabled helper) is reset first, so a cache helper's statistics afterwards are this generation's.</summary>
    /// <param name="onStep">called after every denoising step (progress, or the latents as they form)</param>
    /// <param name="cancellation">checked before every step: a cancelled generation throws
    /// <see cref="OperationCanceledException"/> within a step, its buffers returned and the transformer's hook restored</param>
    public GenerationResult Generate(GenerationOptions options, Action<StepInfo>? onStep = null, CancellationToken cancellation = default)
    {
        var job = Prepare(options);
        using (Enter("DiTPipeline.Generate")) return Generate(job, onStep, cancellation);
    }

    /// <summary>Claims the backend for one of the pipeline's jobs (<see cref="Backend.Claim"/>: a second thread is refused)
    /// and refuses a job started from inside another on the same thread (from an onStep callback): the two would
    /// share the transformer's hook, and a cache helper's steps and stored outputs would mix.</summary>
    internal IDisposable Enter(string work)
    {
        var claim = Backend.Claim(work);
        if (_running)
        {
            claim.Dispose();
            throw new InvalidOperationException(
                $"{work}: this pipeline is already running a generation on this thread (called from its onStep callback?); " +
                "start the next one after Generate returns");
        }
        _running = true;
        return new Running(this, claim);
    }

    private sealed class Running(DiTPipeline pipeline, IDisposable claim) : IDisposable
    {
        private bool _ended;

        public void Dispose()
        {
            if (_ended) return;
            _ended = true;
            pipeline._running = false;
            try
            {
                // Disposed from this job's own onStep: its buffers came back to the arena only now.
                if (pipeline.IsDisposed) pipeline.Backend.Arena.ReleaseFree();
            }
            finally
            {
                claim.Dispose();
            }
        }
    }

    private GenerationResult Generate(Job job, Action<StepInfo>? onStep, CancellationToken cancellation = default)
    {
        var timer = Stopwatch.StartNew();
        using var x = Backend.Arena.Upload(job.Noise, job.Shape);
        using (UseHook(job.Options.Hook))
        {
            // Each generation starts its hook over: a cache helper's step counts from 0, no outputs of an earlier run.
            Transformer.Hook?.Reset();
            using var images = Denoise(job, x, onStep, cancellation);
            return new GenerationResult(x.ToArray(), job.Shape, images.ToArray(), images.Shape, timer.Elapsed);
        }
    }

    /// <summary>
    /// Records a whole generation (every denoising step, the decode and the conversion to images) for
    /// <see cref="RecordedGeneration.Run"/> to replay with new noise: on CUDA one graph launch then runs all
    /// of it, so small batches stop waiting on the host's launches. Everything else is fixed when recorded:
    /// labels, steps, scheduler, guidance, and the hook's schedule. Record first runs one ordinary
    /// generation with these options (it compiles the kernels, which a recording cannot), then resets the
    /// hook (the options' or the transformer's, e.g. an enabled SmoothCacheHelper) before and after
    /// recording: a replay does not count in a cache helper's statistics. Schedulers that draw fresh noise every step
    /// (ddpm) and hooks that read results on the host (CalibrationHelper) cannot be recorded. The pipeline disposes
    /// its recordings when it is disposed.
    /// </summary>
    public RecordedGeneration Record(GenerationOptions options)
    {
        var job = Prepare(options);
        if (job.Scheduler.NeedsNoise)
            throw new NotSupportedException(
                $"the {options.Scheduler ?? DefaultSchedulerKind} scheduler draws new noise every step, which a recording cannot upload: use ddim or dpm");
        var hook = options.Hook ?? Transformer.Hook;
        if (hook?.RecordingRefusal is { } refusal) throw new NotSupportedException(refusal);
        using var running = Enter("DiTPipeline.Record");
        Generate(job, null);
        hook?.Reset();
        var x = Backend.Arena.Rent(job.Shape);
        try
        {
            LaunchRecording recording;
            using (UseHook(options.Hook))
                recording = Backend.Record(() => Denoise(job, x, null, CancellationToken.None));
            var recorded = new RecordedGeneration(this, recording, x, job.Shape, (float[])job.Noise.Clone());
            _recordings.Add(recorded);
            return recorded;
        }
        catch
        {
            x.Dispose();
            throw;
        }
        finally
        {
            hook?.Reset();
        }
    }

    /// <summary>A generation's checked inputs: latent shape, initial noise, scheduler and the batch's labels
    /// (doubled with null labels under guidance).</summary>
    private sealed record Job(GenerationOptions Options, int[] Shape, float[] Noise, NoiseScheduler Scheduler, int[] Labels, bool Guided);

    private Job Prepare(GenerationOptions options)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        ArgumentNullException.ThrowIfNull(options);
        var config = Transformer.Config;
        if (options.Steps < 1 || options.Steps > SchedulerConfig.NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(options),
                $"Steps must be from 1 to the scheduler's num_train_timesteps ({SchedulerConfig.NumTrainTimesteps}), got {options.Steps}");
        if (!float.IsFinite(options.GuidanceScale) || options.GuidanceScale < 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"GuidanceScale must be a finite number >= 0, got {options.GuidanceScale}");
        if (options.Labels is null || options.Labels.Length == 0) throw new ArgumentException("no Labels given: one class id an image", nameof(options));
        int b = options.Labels.Length;
        bool guided = options.GuidanceScale > 1;
        int most = MaxImages(guided);
        if (b > most)
            throw new ArgumentOutOfRangeException(nameof(options),
                $"{b} Labels are more images than one generation of this model takes ({most}{(guided ? " under guidance, which doubles the batch" : "")}: " +
                "its kernels index activations in 32 bits); generate them in batches");
        foreach (int y in options.Labels)
            if (y < 0 || y > config.NullClass)
                throw new ArgumentOutOfRangeException(nameof(options), LabelOutOfRange(y));
        var shape = LatentShape(b);
        long count = Tensor.ElementCount(shape);
        if (options.InitialNoise is { } given) CheckNoise(given, shape, "InitialNoise", nameof(options));
        var noise = options.InitialNoise ?? GaussianNoise.Sample(options.Seed, 0, count);
        var scheduler = NoiseScheduler.Create(options.Scheduler ?? DefaultSchedulerKind, SchedulerConfig, options.Steps);
        int[] labels = guided ? [.. options.Labels, .. Enumerable.Repeat(config.NullClass, b)] : options.Labels;
        return new Job(options, shape, noise, scheduler, labels, guided);
    }

    /// <summary>Refuses initial latents that are not [B, C, S, S] flattened or hold a value that is not finite (which
    /// would silently make every image NaN).</summary>
    internal static void CheckNoise(float[] noise, int[] shape, string what, string paramName)
    {
        long count = Tensor.ElementCount(shape);
        if (noise.Length != count)
            throw new ArgumentException($"{what} has {noise.Length} values, expected {count} for [{string.Join(",", shape)}]", paramName);
        int bad = Array.FindIndex(noise, v => !float.IsFinite(v));
        if (bad >= 0) throw new ArgumentException($"{what}[{bad}] is {noise[bad]}: expected finite values", paramName);
    }

    /// <summary>Installs a generation's hook on the transformer until disposed (none: the current one stays).</summary>
    private IDisposable? UseHook(IComponentHook? hook)
    {
        if (hook is null) return null;
        var previous = Transformer.Hook;
        Transformer.Hook = hook;
        return new HookRestorer(Transformer, previous);
    }

    private sealed class HookRestorer(DiTTransformer transformer, IComponentHook? previous) : IDisposable
    {
        public void Dispose() => transformer.Hook = previous;
    }

    /// <summary>The denoising loop on x (updated in place), then the decoded images [B, S, S, C] in [0, 1].</summary>
    private Tensor Denoise(Job job, Tensor x, Action<StepInfo>? onStep, CancellationToken cancellation)
    {
        var options = job.Options;
        var arena = Backend.Arena;
        long count = x.Length;
        using var dataPrediction = arena.Zeros(job.Shape);
        var timesteps = job.Scheduler.Timesteps;
        // Every step's adaLN modulation ahead, many steps to a conditioning GEMM.
        using var modulation = Transformer.PlanModulation(timesteps.Select(t => (float)t).ToArray(), job.Labels);
        for (int i = 0; i < timesteps.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            ObjectDisposedException.ThrowIf(Backend.IsDisposed, Backend);
            using (var input = job.Guided ? RepeatBatch.Run(x, 2) : x.Share())
            using (var output = Transformer.Forward(input, modulation, i))
            using (var eps = Guidance.Run(output, Transformer.Config.InChannels, options.GuidanceScale, job.Guided))
            using (var z = job.Scheduler.NeedsNoise ? arena.Upload(GaussianNoise.Sample(options.Seed, 1 + i, count), job.Shape) : null)
                SchedulerStep.Apply(Backend, job.Scheduler.Step(i), x, eps, dataPrediction, z);
            onStep?.Invoke(new StepInfo(i, timesteps.Count, timesteps[i], x));
        }
        using var decoded = Decode(x);
        return ImageOutput.ToImages(decoded);
    }

    /// <summary>The images in [-1, 1] NCHW: the VAE's decoding of latents / scaling_factor, or the latents themselves.</summary>
    private Tensor Decode(Tensor latents)
    {
        if (Vae is null) return latents.Share();
        using var scaled = ImageOutput.Scale(latents, 1f / Vae.Config.ScalingFactor);
        return Vae.Decode(scaled);
    }

    internal void Forget(RecordedGeneration recording) => _recordings.Remove(recording);

    /// <summary>Disposes the recordings, the transformer and the VAE, then frees the device memory the backend's arena
    /// kept for reuse (<see cref="TensorArena.ReleaseFree"/>). The backend stays the caller's. A generation running on
    /// another thread throws ObjectDisposedException at its next step, and this waits for it to end before freeing
    /// anything (<see cref="Backend.ClaimUnlessDisposed"/>), as it does for any other thread's work on the backend.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        using (Backend.ClaimUnlessDisposed("DiTPipeline.Dispose"))
        {
            try
            {
                foreach (var recording in _recordings.ToArray()) recording.Dispose();
                Transformer.Dispose();
            }
            finally
            {
                Vae?.Dispose();
                Backend.Arena.ReleaseFree();
            }
        }
    }
}
