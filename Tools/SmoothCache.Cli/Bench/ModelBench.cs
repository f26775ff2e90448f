using System.Diagnostics;
using MathNet.Numerics.Statistics;
using SmoothCache.Caching;
using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Bench;

/// <summary>What the forward and sampling suites run. Images 0 means each job's own size (8 for XL, 10 for dit-digits).</summary>
/// <param name="ExtraBatch">timed in the forward suite besides 2 and 16 (20: the digits default job with CFG)</param>
/// <param name="DependentReplays">where the GPU has programmatic dependent launch, also replay recordings made with it</param>
/// <param name="JobRuns">sampling: timed runs of each job (uncached and cached in turn), the median reported</param>
public sealed record ModelBenchSettings(int Iterations, int Steps, int Images, bool Xl, string DigitsFolder, string ScheduleFolder,
    int ExtraBatch = 20, bool Profile = false, Precision? OnlyPrecision = null, bool DependentReplays = true, int JobRuns = 3);

/// <summary>One model forward: the first call (kernel compiles, driver JIT) apart, then the mean of the timed calls.</summary>
public sealed record ForwardTiming(
    string Model, string Precision, int Batch, double FirstCallMs, int KernelsCompiled, int Iterations,
    double Milliseconds, double LaunchesPerForward, double Tflops)
{
    /// <summary>Of <see cref="FirstCallMs"/>, the time spent loading its <see cref="KernelsCompiled"/> kernels (ILGPU's
    /// compile, and on CUDA the driver's assembly of the PTX).</summary>
    public double KernelLoadMs { get; init; }
    /// <summary>With --profile: device time per kernel of one more forward, largest first.</summary>
    public IReadOnlyList<KernelTime>? Kernels { get; init; }
    /// <summary>With --profile: sum of the kernels' device times of that forward.</summary>
    public double? KernelMilliseconds { get; init; }
    /// <summary>The same forward recorded once and replayed (a CUDA graph on CUDA): mean milliseconds per replay.</summary>
    public double? ReplayMilliseconds { get; init; }
    /// <summary>Replayed over directly launched milliseconds (the table's replay/ms).</summary>
    public double? ReplayOverDirect => ReplayMilliseconds / Milliseconds;
    /// <summary>Relative L2 difference between the replayed and the directly launched forward's output.</summary>
    public double? ReplayRelativeError { get; init; }
    /// <summary>Where the GPU has programmatic dependent launch: the same, recorded with
    /// <see cref="Backend.DependentLaunches"/> (each kernel launched while the one before it runs).</summary>
    public double? DependentReplayMilliseconds { get; init; }
    /// <summary>The kernel-to-kernel edges that recording launched early (of <see cref="LaunchesPerForward"/> - 1 at most).</summary>
    public int? DependentLaunches { get; init; }
}

/// <summary>One sampling job timed without and with SmoothCache, in the same run: each time the median of
/// <see cref="Runs"/> runs.</summary>
public sealed record SamplingTiming(
    string Model, string Precision, int Images, int Steps, string Schedule, double UncachedSeconds,
    double CachedSeconds, double Speedup, double ComputedFraction, double CachedVsUncachedError)
{
    public int Runs { get; init; } = 1;
    /// <summary>The uncached and the cached job recorded once (<see cref="DiTPipeline.Record"/>) and replayed: seconds per run.</summary>
    public double? ReplayedUncachedSeconds { get; init; }
    public double? ReplayedCachedSeconds { get; init; }
    public double? ReplayedSpeedup => ReplayedUncachedSeconds / ReplayedCachedSeconds;
    /// <summary>Where the GPU has programmatic dependent launch: both jobs recorded with <see cref="Backend.DependentLaunches"/>.</summary>
    public double? DependentUncachedSeconds { get; init; }
    public double? DependentCachedSeconds { get; init; }
    public double? DependentSpeedup => DependentUncachedSeconds / DependentCachedSeconds;
}

/// <summary>Everything a forward or sampling suite produced; failed cases are listed, not fatal.</summary>
public sealed class ModelBenchReport
{
    public List<ForwardTiming> Forward { get; } = new();
    public List<SamplingTiming> Sampling { get; } = new();
    public List<string> Notes { get; } = new();
    public List<string> Failures { get; } = new();
}

/// <summary>
/// Whole-model benchmarks (DESIGN §6). Forward: one DiT forward at batch 2 and 16 for dit-digits and
/// DiT-XL/2-256 with synthetic weights, per precision (fp16 and fp32 on CUDA, fp32 on the CPU):
/// milliseconds, kernel launches per forward and TFLOP/s. Sampling: a DDIM job with classifier-free
/// guidance (scale 4), uncached and then with a SmoothCache schedule, reporting the speedup: dit-digits
/// (10 digits) with schedules/dit-digits/ddim-50-a0.15.json, or a schedule calibrated in-process
/// from the same seed's run when that file is absent; DiT-XL/2 (8 images, a batch of 16 forwards) with
/// the published alpha 0.18 schedule. XL takes minutes per forward on the CPU accelerator, so there it
/// runs only when asked. Timings exclude the VAE (the pipeline returns latents).
/// </summary>
public static class ModelBench
{
    public static readonly int[] ForwardBatches = [2, 16];
    /// <summary>Eight ImageNet classes for the XL job (the DiT paper's sample grid).</summary>
    public static readonly int[] XlLabels = [207, 360, 387, 974, 88, 979, 417, 279];
    public const string XlName = "DiT-XL/2-256 synthetic";
    public const string DigitsName = "dit-digits";
    public const string XlSchedule = "dit-xl-2-256/50-N-3-threshold-0.18.json";
    public const string DigitsSchedule = "dit-digits/ddim-50-a0.15.json";
    public const double DigitsAlpha = 0.15;
    public const int DigitsLookahead = 3;
    public const float GuidanceScale = 4f;

    /// <summary>The precision the settings ask for, else both on CUDA and fp32 on the CPU accelerator.</summary>
    public static IReadOnlyList<Precision> Precisions(Backend backend, ModelBenchSettings s) =>
        s.OnlyPrecision is { } only ? [only] : backend.IsCuda ? [Precision.Fp16, Precision.Fp32] : [Precision.Fp32];


    private static bool IncludeXl(Backend backend, ModelBenchSettings s, ModelBenchReport report)
    {
        if (backend.IsCuda || s.Xl) return true;
        report.Notes.Add("DiT-XL/2 skipped: the CPU accelerator takes minutes per XL forward (--xl runs it anyway)");
        return false;
    }

    private static DiTPipeline BuildXl(Backend backend, Precision precision)
    {
        using var weights = new SyntheticWeights(SyntheticWeights.XL2_256);
        var transformer = new DiTTransformer(backend, SyntheticWeights.XL2_256, weights, precision);
        return DiTPipeline.FromTransformer(transformer, SchedulerConfig.DitDefault);
    }

    /// <summary>Runs one case; a failure is logged and recorded so the remaining cases still run.</summary>
    private static void Attempt(string what, ModelBenchReport report, TextWriter log, Action run)
    {
        try
        {
            run();
        }
        catch (Exception e)
        {
            string line = $"{what} failed: {e.GetType().Name}: {e.Message}";
            report.Failures.Add(line);
            log.WriteLine("FAILED " + line);
        }
    }

    public static void Forward(Backend backend, ModelBenchSettings s, ModelBenchReport report, TextWriter log)
    {
        bool xl = IncludeXl(backend, s, report);
        log.WriteLine($"forward on {backend.DeviceName}, mean of {s.Iterations} after one warm-up call");
        log.WriteLine($"{"model",-24} {"prec",-4} {"batch",5} {"first ms",9} {"compiled",8} {"ms",9} {"launches",8} {"TFLOP/s",8} {"replay ms",9} {"replay/ms",9} {"load ms",9} {"pdl ms",9}");
        // XL first: on CUDA a dit-digits run (portable attention, head dim 16) has left the context
        // unable to load further kernels (see BENCHMARKS.md), so it goes last.
        var models = new List<(string Name, Func<Precision, DiTPipeline> Build)>();
        if (xl) models.Add((XlName, precision => BuildXl(backend, precision)));
        models.Add((DigitsName, precision => DiTPipeline.Load(s.DigitsFolder, backend, precision)));
        foreach (var (name, build) in models)
            foreach (var precision in Precisions(backend, s))
                Attempt($"forward {name} {HalfConversion.PrecisionName(precision)}", report, log, () =>
                {
                    using var pipeline = build(precision);
                    foreach (int batch in ForwardBatches.Append(s.ExtraBatch).Distinct())
                    {
                        var r = TimeForward(pipeline.Transformer, name, batch, s.Iterations);
                        // A failing replay is reported but keeps the direct timing.
                        r = TryReplay($"forward {name} {HalfConversion.PrecisionName(precision)} batch {batch} replayed", report, log, r,
                            () => ReplayForward(pipeline.Transformer, r, dependentLaunches: false));
                        if (backend.SupportsDependentLaunches && s.DependentReplays)
                            r = TryReplay($"forward {name} {HalfConversion.PrecisionName(precision)} batch {batch} replayed with dependent launches", report, log, r,
                                () => ReplayForward(pipeline.Transformer, r, dependentLaunches: true));
                        log.WriteLine($"{r.Model,-24} {r.Precision,-4} {r.Batch,5} {r.FirstCallMs,9:F1} {r.KernelsCompiled,8} " +
                                      $"{r.Milliseconds,9:F3} {r.LaunchesPerForward,8:F0} {r.Tflops,8:G3} {r.ReplayMilliseconds,9:F3} {r.ReplayMilliseconds / r.Milliseconds,9:F2} {r.KernelLoadMs,9:F1} {r.DependentReplayMilliseconds,9:F3}");
                        if (r.DependentLaunches is { } early)
                            log.WriteLine($"  pdl: {early} of {r.LaunchesPerForward:F0} launches recorded to start while the kernel before them runs");
                        if (s.Profile) r = ProfileForward(pipeline.Transformer, r, log);
                        report.Forward.Add(r);
                    }
                });
    }

    internal static (Tensor Latents, float[] Timesteps, int[] Labels) ForwardInputs(DiTTransformer model, int batch)
    {
        var c = model.Config;
        var latents = model.Backend.Arena.Upload(GpuChecks.RandomData(7, (long)batch * c.InChannels * c.SampleSize * c.SampleSize, 1f),
            batch, c.InChannels, c.SampleSize, c.SampleSize);
        // One timestep for the batch, as in sampling (it travels in the kernel arguments: no upload).
        var timesteps = Enumerable.Repeat(501f, batch).ToArray();
        var labels = Enumerable.Range(0, batch).Select(i => i * 7 % c.NumClasses).ToArray();
        return (latents, timesteps, labels);
    }

    /// <summary>
    /// One more forward with every launch's device time recorded; prints the kernels that take 90% of
    /// it and how the kernel time compares with the timed forward (the rest is launch overhead and gaps).
    /// </summary>
    public static ForwardTiming ProfileForward(DiTTransformer model, ForwardTiming timing, TextWriter log)
    {
        var (latents, timesteps, labels) = ForwardInputs(model, timing.Batch);
        using (latents)
        using (var profile = model.Backend.StartProfile())
        {
            model.Forward(latents, timesteps, labels).Dispose();
            var kernels = profile.Read();
            double total = kernels.Sum(k => k.Milliseconds);
            log.WriteLine($"  profile: kernels {total:F3} ms of {timing.Milliseconds:F3} ms per forward ({total / timing.Milliseconds:P0}); " +
                          $"{profile.Launches} launches");
            double shown = 0;
            foreach (var k in kernels)
            {
                if (shown >= 0.9 * total) break;
                shown += k.Milliseconds;
                log.WriteLine($"    {k.Kernel,-44} {k.Launches,5} x {1000 * k.Milliseconds / k.Launches,9:F1} us = {k.Milliseconds,8:F3} ms {k.Milliseconds / total,5:P0}");
            }
            return timing with { Kernels = kernels, KernelMilliseconds = total };
        }
    }

    /// <summary>Replays run the same kernels on the same data as direct launches, in the same order (split-K's
    /// finish too sums its splits in a fixed order): the results should agree exactly; this allows float rounding.</summary>
    private const double ReplayTolerance = 1e-5;

    public static ForwardTiming TimeForward(DiTTransformer model, string name, int batch, int iterations)
    {
        var backend = model.Backend;
        var (latentsTensor, timesteps, labels) = ForwardInputs(model, batch);
        using var latents = latentsTensor;

        int compiledBefore = backend.LoadedKernelCount;
        double loadBefore = backend.KernelLoadMilliseconds;
        backend.Synchronize();
        var watch = Stopwatch.StartNew();
        model.Forward(latents, timesteps, labels).Dispose();
        backend.Synchronize();
        double first = watch.Elapsed.TotalMilliseconds;
        int compiled = backend.LoadedKernelCount - compiledBefore;
        BenchClock.KeepBusy(backend, () => model.Forward(latents, timesteps, labels).Dispose());

        long launchesBefore = backend.LaunchCount;
        watch.Restart();
        for (int i = 0; i < iterations; i++) model.Forward(latents, timesteps, labels).Dispose();
        backend.Synchronize();
        double ms = watch.Elapsed.TotalMilliseconds / iterations;
        double launches = (double)(backend.LaunchCount - launchesBefore) / iterations;
        double tflops = 2.0 * model.ForwardMacs(batch) / (ms * 1e-3) / 1e12;
        return new ForwardTiming(name, HalfConversion.PrecisionName(model.Precision), batch, first, compiled, iterations, ms, launches, tflops)
        {
            KernelLoadMs = backend.KernelLoadMilliseconds - loadBefore,
        };
    }

    /// <summary>The same forward recorded once and replayed (a CUDA graph on CUDA): what the host's
    /// launches cost the direct forward; with <paramref name="dependentLaunches"/>, recorded with
    /// <see cref="Backend.DependentLaunches"/> (what the gaps between kernels cost). Throws when the replay's output
    /// differs from the direct one.</summary>
    public static ForwardTiming ReplayForward(DiTTransformer model, ForwardTiming timing, bool dependentLaunches)
    {
        var backend = model.Backend;
        var (latentsTensor, timesteps, labels) = ForwardInputs(model, timing.Batch);
        using var latents = latentsTensor;
        using var direct = model.Forward(latents, timesteps, labels);
        using var recording = WithDependentLaunches(backend, dependentLaunches, () => backend.Record(() => model.Forward(latents, timesteps, labels)));
        recording.Replay();
        double error = GpuChecks.RelativeL2(recording.Output.ToArray(), direct.ToArray());
        if (error > ReplayTolerance)
            throw new InvalidOperationException($"the replayed forward differs from the direct one by {error:E2}");
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < timing.Iterations; i++) recording.Replay();
        backend.Synchronize();
        double ms = watch.Elapsed.TotalMilliseconds / timing.Iterations;
        return dependentLaunches
            ? timing with { DependentReplayMilliseconds = ms, DependentLaunches = recording.DependentLaunches }
            : timing with { ReplayMilliseconds = ms, ReplayRelativeError = error };
    }

    /// <summary>Runs <paramref name="record"/> with <see cref="Backend.DependentLaunches"/> set as given, then restores it.</summary>
    internal static T WithDependentLaunches<T>(Backend backend, bool on, Func<T> record)
    {
        bool before = backend.DependentLaunches;
        backend.DependentLaunches = on;
        try
        {
            return record();
        }
        finally
        {
            backend.DependentLaunches = before;
        }
    }

    /// <summary>Runs a replay measurement; a failure is logged and recorded, and the timing kept without it.</summary>
    private static T TryReplay<T>(string what, ModelBenchReport report, TextWriter log, T timing, Func<T> replay)
    {
        var result = timing;
        Attempt(what, report, log, () => result = replay());
        return result;
    }

    public static void Sampling(Backend backend, ModelBenchSettings s, ModelBenchReport report, TextWriter log)
    {
        bool xl = IncludeXl(backend, s, report);
        log.WriteLine($"sampling on {backend.DeviceName}: DDIM {s.Steps} steps, guidance {GuidanceScale}, uncached then cached, " +
                      $"median of {s.JobRuns} run{(s.JobRuns == 1 ? "" : "s")} each");
        log.WriteLine($"{"model",-24} {"prec",-4} {"images",6} {"uncached s",10} {"cached s",9} {"speedup",7} {"computed",8} {"rel.diff",9} " +
                      $"{"replayed",8} {"cached",8} {"speedup",7} {"pdl",8} {"cached",8} {"speedup",7}  schedule");
        if (xl)
        {
            foreach (var precision in Precisions(backend, s))
            {
                int images = s.Images > 0 ? s.Images : XlLabels.Length;
                Attempt($"sampling {XlName} {HalfConversion.PrecisionName(precision)}", report, log, () =>
                {
                    string file = Path.Combine(s.ScheduleFolder, XlSchedule);
                    if (!File.Exists(file)) throw new FileNotFoundException($"schedule {file} not found (published alpha 0.18 schedule)");
                    using var pipeline = BuildXl(backend, precision);
                    var labels = Enumerable.Range(0, images).Select(i => XlLabels[i % XlLabels.Length]).ToArray();
                    Report(report, log, RunJob(pipeline, XlName, labels, s, report, log, file));
                });
            }
        }
        foreach (var precision in Precisions(backend, s))
        {
            int digits = s.Images > 0 ? s.Images : 10;
            Attempt($"sampling {DigitsName} {HalfConversion.PrecisionName(precision)}", report, log, () =>
            {
                using var pipeline = DiTPipeline.Load(s.DigitsFolder, backend, precision);
                var labels = Enumerable.Range(0, digits).Select(i => i % pipeline.Transformer.Config.NumClasses).ToArray();
                Report(report, log, RunJob(pipeline, DigitsName, labels, s, report, log, Path.Combine(s.ScheduleFolder, DigitsSchedule)));
            });
        }
    }

    private static void Report(ModelBenchReport report, TextWriter log, SamplingTiming r)
    {
        report.Sampling.Add(r);
        log.WriteLine($"{r.Model,-24} {r.Precision,-4} {r.Images,6} {r.UncachedSeconds,10:F3} {r.CachedSeconds,9:F3} " +
                      $"{r.Speedup,6:F2}x {r.ComputedFraction,8:P0} {r.CachedVsUncachedError,9:E1} " +
                      $"{r.ReplayedUncachedSeconds,8:F3} {r.ReplayedCachedSeconds,8:F3} {Ratio(r.ReplayedSpeedup)} " +
                      $"{r.DependentUncachedSeconds,8:F3} {r.DependentCachedSeconds,8:F3} {Ratio(r.DependentSpeedup)}  {r.Schedule}");
    }

    /// <summary>A speed-up as "1.94x", or blanks of the same width where the job was not timed that way.</summary>
    private static string Ratio(double? speedup) => speedup is { } x ? $"{x,6:F2}x" : new string(' ', 7);

    /// <summary>
    /// Warm-up (or the calibration run, which warms up too) and one cached job, then the uncached and the cached
    /// job with the same seed, timed in turn <see cref="ModelBenchSettings.JobRuns"/> times each. The schedule comes from <paramref name="scheduleFile"/> when it exists
    /// and is for the job's steps; otherwise it is calibrated from this job.
    /// </summary>
    private static SamplingTiming RunJob(DiTPipeline pipeline, string model, int[] labels, ModelBenchSettings s,
        ModelBenchReport report, TextWriter log, string scheduleFile)
    {
        var options = new GenerationOptions { Labels = labels, Steps = s.Steps, Scheduler = "ddim", GuidanceScale = GuidanceScale, Seed = 0 };
        var transformer = pipeline.Transformer;
        CacheSchedule schedule;
        string source;
        var stored = File.Exists(scheduleFile) ? CacheSchedule.Load(scheduleFile) : null;
        int storedSteps = stored?.Keys.Max(k => stored[k].Count) ?? 0;
        if (stored is not null && storedSteps == s.Steps)
        {
            schedule = stored;
            source = Path.GetRelativePath(s.ScheduleFolder, scheduleFile);
            pipeline.Generate(options with { Steps = 1 });
        }
        else
        {
            // A schedule made for other steps skips at other timesteps (and past its end computes everything): the job's own
            // calibration stands in for it.
            using (var calibration = CalibrationHelper.Enable(transformer, DigitsLookahead, ["attn1", "ff"]))
            {
                pipeline.Generate(options);
                schedule = calibration.Schedule(DigitsAlpha, s.Steps);
            }
            string why = stored is null ? $"no {Path.GetFileName(scheduleFile)}" : $"{Path.GetFileName(scheduleFile)} is for {storedSteps} steps";
            source = $"calibrated in-process (alpha {DigitsAlpha}, lookahead {DigitsLookahead}, attn1+ff; {why})";
        }
        foreach (var warning in schedule.Validate(transformer.NumBlocks, s.Steps)) report.Notes.Add(warning);
        // A cached job launches kernels an uncached one does not (a reused component's residual added on its own,
        // two at once): one untimed cached job first, so that no kernel is compiled while the jobs are timed.
        using (SmoothCacheHelper.Enable(transformer, schedule)) pipeline.Generate(options);

        // Uncached and cached in turn, so that a slower stretch of a shared machine falls on both alike.
        int compiledBefore = transformer.Backend.LoadedKernelCount;
        GenerationResult uncached = null!, cached = null!;
        CacheStats stats = null!;
        var uncachedRuns = new List<double>();
        var cachedRuns = new List<double>();
        for (int run = 0; run < s.JobRuns; run++)
        {
            var watch = Stopwatch.StartNew();
            uncached = pipeline.Generate(options);
            uncachedRuns.Add(watch.Elapsed.TotalSeconds);
            using var helper = SmoothCacheHelper.Enable(transformer, schedule);
            watch.Restart();
            cached = pipeline.Generate(options);
            cachedRuns.Add(watch.Elapsed.TotalSeconds);
            stats = helper.Stats();
        }
        double uncachedSeconds = uncachedRuns.Median(), cachedSeconds = cachedRuns.Median();
        if (transformer.Backend.LoadedKernelCount > compiledBefore)
            report.Notes.Add($"sampling {model}: {transformer.Backend.LoadedKernelCount - compiledBefore} kernels were compiled during the timed jobs");

        var timing = new SamplingTiming(model, HalfConversion.PrecisionName(transformer.Precision), labels.Length, s.Steps, source, uncachedSeconds, cachedSeconds,
            uncachedSeconds / cachedSeconds, stats.ComputedFraction, GpuChecks.RelativeL2(cached.Latents, uncached.Latents)) { Runs = s.JobRuns };

        // Both jobs again, each recorded once and replayed (one CUDA graph per job on CUDA); where the GPU has
        // programmatic dependent launch, once more recorded with it.
        var backend = transformer.Backend;
        (double Uncached, double Cached) Replayed(bool dependentLaunches)
        {
            double replayedUncached, replayedCached;
            using (var recorded = WithDependentLaunches(backend, dependentLaunches, () => pipeline.Record(options)))
                replayedUncached = TimeReplay(recorded, uncached, s.JobRuns);
            using (SmoothCacheHelper.Enable(transformer, schedule))
            using (var recorded = WithDependentLaunches(backend, dependentLaunches, () => pipeline.Record(options)))
                replayedCached = TimeReplay(recorded, cached, s.JobRuns);
            return (replayedUncached, replayedCached);
        }
        timing = TryReplay($"sampling {model} {timing.Precision} replayed", report, log, timing, () =>
        {
            var (u, c) = Replayed(dependentLaunches: false);
            return timing with { ReplayedUncachedSeconds = u, ReplayedCachedSeconds = c };
        });
        if (!backend.SupportsDependentLaunches || !s.DependentReplays) return timing;
        return TryReplay($"sampling {model} {timing.Precision} replayed with dependent launches", report, log, timing, () =>
        {
            var (u, c) = Replayed(dependentLaunches: true);
            return timing with { DependentUncachedSeconds = u, DependentCachedSeconds = c };
        });
    }

    /// <summary>Median seconds of <paramref name="runs"/> replays, each checked to reproduce the directly launched job.</summary>
    private static double TimeReplay(RecordedGeneration recorded, GenerationResult direct, int runs)
    {
        var seconds = new List<double>();
        for (int run = 0; run < runs; run++)
        {
            var result = recorded.Run();
            double error = GpuChecks.RelativeL2(result.Latents, direct.Latents);
            if (error > ReplayTolerance)
                throw new InvalidOperationException($"the replayed job differs from the directly launched one by {error:E2}");
            seconds.Add(result.Elapsed.TotalSeconds);
        }
        return seconds.Median();
    }
}
