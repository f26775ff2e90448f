using MathNet.Numerics.Statistics;
using SmoothCache.Caching;
using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Evaluation;

/// <summary>What `smoothcache eval` runs: <see cref="Samples"/> images (labels cycling 0..9, noise from
/// <see cref="Seed"/>) per schedule; one calibrated schedule per threshold and one FORA schedule per period.
/// A null <see cref="Scheduler"/> means the model's; the report holds the resolved name. Each schedule's job runs
/// <see cref="Runs"/> times: its latency is their median (its images are the same each time).</summary>
public sealed record EvalSettings(
    int Samples,
    int Steps,
    string? Scheduler,
    float Guidance,
    long Seed,
    IReadOnlyList<double> Thresholds,
    IReadOnlyList<int> ForaPeriods,
    IReadOnlyList<string> Components,
    int Lookahead,
    int Runs = 1)
{
    public int[] Labels(int classCount) =>
        Enumerable.Range(0, Samples).Select(i => i % Math.Min(10, classCount)).ToArray();

    /// <summary>Runs in order: calibration, plain no-cache, one per threshold, one per FORA period.</summary>
    public int RunCount => 2 + Thresholds.Count + ForaPeriods.Count;
}

public enum ScheduleKind { NoCache, SmoothCache, Fora }

/// <summary>One row of the results: a schedule's cost and the quality of its samples against the
/// uncached ones (same noise) and against real digits.</summary>
public sealed record EvalRow(
    string Name,
    ScheduleKind Kind,
    double? Alpha,
    int? ForaPeriod,
    int Steps,
    IReadOnlyDictionary<string, double> ComputedFraction,
    long Macs,
    TimeSpan Latency,
    double Speedup,
    double RelativeL2,
    double Psnr,
    double Accuracy,
    double FrechetDistance,
    CacheSchedule? Schedule)
{
    /// <summary>File-name form of the schedule: no-cache, alpha-0.15, fora-2.</summary>
    public string Slug => Kind switch
    {
        ScheduleKind.SmoothCache => $"alpha-{EvalTable.Number(Alpha!.Value)}",
        ScheduleKind.Fora => $"fora-{ForaPeriod}",
        _ => "no-cache",
    };
}

/// <summary>Everything an eval produced, before anything is written.</summary>
public sealed record EvalReport(
    EvalSettings Settings,
    string Model,
    string Device,
    string Precision,
    MacBudget Macs,
    int ForwardBatch,
    DigitJudge Judge,
    double RealFrechetFloor,
    double CalibrationVsPlainRelativeL2,
    CalibrationHelper Calibration,
    IReadOnlyList<EvalRow> Rows,
    IReadOnlyDictionary<string, float[]> Images,
    int[] ImageShape,
    int[] Labels);

/// <summary>
/// Runs the evaluation (issue 7). The calibration run computes every component, so it is also the
/// uncached baseline; it runs first and so also warms up every kernel. The no-cache row is a second,
/// plain run without any hook, so its wall time carries no calibration overhead; its images are the
/// reference of relative L2 and PSNR. Each cached run then uses the same labels and noise.
/// Wall times are measured in this process, one run after another, by the pipeline itself.
/// </summary>
public static class EvalRunner
{
    /// <summary>Runs every schedule. <paramref name="log"/> gets one line per run start and end;
    /// <paramref name="cancel"/> is checked after every denoising step (throws OperationCanceledException).</summary>
    public static EvalReport Run(DiTPipeline pipeline, DigitJudge judge, EvalSettings settings,
        Action<string> log, CancellationToken cancel)
    {
        settings = settings with { Scheduler = settings.Scheduler ?? pipeline.DefaultSchedulerKind };
        var transformer = pipeline.Transformer;
        var labels = settings.Labels(transformer.Config.NumClasses);
        int batch = MacBudget.ForwardBatch(settings.Samples, settings.Guidance);
        var macs = MacBudget.For(transformer, batch);
        var options = new GenerationOptions
        {
            Labels = labels, Steps = settings.Steps, Scheduler = settings.Scheduler,
            GuidanceScale = settings.Guidance, Seed = settings.Seed,
        };
        int run = 0;
        // The calibration's latency is no row's: it runs once.
        GenerationResult Generate(string what, int runs)
        {
            cancel.ThrowIfCancellationRequested();
            log($"[{++run}/{settings.RunCount}] {what}: {settings.Samples} samples, {settings.Scheduler} {settings.Steps} steps" +
                (runs > 1 ? $", {runs} runs" : ""));
            var result = pipeline.Generate(options, cancellation: cancel);
            var seconds = new List<double> { result.Elapsed.TotalSeconds };
            for (int again = 1; again < runs; again++)
                seconds.Add(pipeline.Generate(options, cancellation: cancel).Elapsed.TotalSeconds);
            var median = TimeSpan.FromSeconds(seconds.Median());
            log($"[{run}/{settings.RunCount}] {what}: {median.TotalSeconds:F2} s{(runs > 1 ? $" (median of {runs})" : "")}");
            return result with { Elapsed = median };
        }

        GenerationResult calibrated;
        var calibration = CalibrationHelper.Enable(transformer, settings.Lookahead, settings.Components);
        using (calibration) calibrated = Generate($"calibration (lookahead {settings.Lookahead} on {string.Join(", ", calibration.Components)})", 1);
        var plain = Generate("no cache", settings.Runs);
        var reference = plain.Images;

        EvalRow Row(string name, ScheduleKind kind, double? alpha, int? period, GenerationResult result,
            CacheSchedule? schedule, CacheStats? stats) => new(
            name, kind, alpha, period, settings.Steps,
            Components.All.ToDictionary(c => c, c => stats?.Components.FirstOrDefault(s => s.Component == c)?.ComputedFraction ?? 1.0),
            stats is null ? macs.Uncached(settings.Steps) : macs.Cached(settings.Steps, stats),
            result.Elapsed, plain.Elapsed / result.Elapsed,
            ImageMetrics.RelativeL2(result.Images, reference), ImageMetrics.Psnr(result.Images, reference),
            judge.Accuracy(result.Images, labels), judge.FrechetToReal(result.Images), schedule);

        var rows = new List<EvalRow> { Row("no cache", ScheduleKind.NoCache, null, null, plain, null, null) };
        var images = new Dictionary<string, float[]> { [rows[0].Slug] = plain.Images };
        EvalRow Cached(string name, ScheduleKind kind, double? alpha, int? period, CacheSchedule schedule)
        {
            GenerationResult result;
            CacheStats stats;
            using (var helper = SmoothCacheHelper.Enable(transformer, schedule))
            {
                result = Generate(name, settings.Runs);
                stats = helper.Stats(macs.PerCall);
            }
            var row = Row(name, kind, alpha, period, result, schedule, stats);
            images[row.Slug] = result.Images;
            return row;
        }
        foreach (double alpha in settings.Thresholds)
            rows.Add(Cached($"SmoothCache alpha={EvalTable.Number(alpha)}", ScheduleKind.SmoothCache, alpha, null,
                calibration.Schedule(alpha, settings.Steps)));
        foreach (int period in settings.ForaPeriods)
            rows.Add(Cached($"FORA n={period}", ScheduleKind.Fora, null, period,
                StaticSchedules.Fora(period, settings.Steps, settings.Components)));

        return new EvalReport(settings, pipeline.Folder, pipeline.Backend.DeviceName, HalfConversion.PrecisionName(pipeline.Transformer.Precision), macs, batch, judge,
            judge.RealFloor(settings.Samples), ImageMetrics.RelativeL2(calibrated.Images, reference), calibration,
            rows, images, plain.ImageShape, labels);
    }
}
