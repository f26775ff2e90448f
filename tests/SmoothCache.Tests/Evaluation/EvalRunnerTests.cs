using SmoothCache.Cli.Evaluation;
using SmoothCache.Model;
using SmoothCache.Sampling;

namespace SmoothCache.Tests.Evaluation;

public class EvalRunnerTests
{
    private static readonly Lazy<DigitJudge> Judge = new(() => DigitJudge.Train(DigitsDataset.Load(DigitsDataset.DefaultPath)));

    private static EvalSettings Tiny(params double[] thresholds) =>
        new(Samples: 2, Steps: 4, Scheduler: "ddim", Guidance: 4f, Seed: 3, thresholds, ForaPeriods: [3],
            Components: ["attn1", "ff"], Lookahead: 3);

    [Fact]
    public void RowsAccountForWhatEachScheduleComputed()
    {
        using var pipeline = DiTPipeline.Load(TestSupport.RepoFile("models", "dit-digits"), TestSupport.Cpu);
        var lines = new List<string>();
        // alpha 0 accepts no reuse; a huge alpha reuses as much as the lookahead allows.
        var report = EvalRunner.Run(pipeline, Judge.Value, Tiny(0, 1e9), lines.Add, CancellationToken.None);

        Assert.Equal(["no cache", "SmoothCache alpha=0", "SmoothCache alpha=1E+09", "FORA n=3"], report.Rows.Select(r => r.Name));
        Assert.Equal(5, report.Settings.RunCount);
        Assert.Equal(10, lines.Count); // a start and an end line per run
        Assert.Equal(0, report.CalibrationVsPlainRelativeL2); // calibration computes everything
        Assert.Equal([0, 1], report.Labels);

        var (plain, none, most, fora) = (report.Rows[0], report.Rows[1], report.Rows[2], report.Rows[3]);
        long uncached = 4 * pipeline.Transformer.ForwardMacs(4);
        Assert.Equal(uncached, plain.Macs);
        Assert.Equal((0.0, double.PositiveInfinity, 1.0), (plain.RelativeL2, plain.Psnr, plain.Speedup));
        Assert.Equal(uncached, none.Macs);
        Assert.Equal(0, none.RelativeL2);

        var budget = MacBudget.For(pipeline.Transformer, 4);
        foreach (var row in new[] { most, fora })
        {
            long reusedMacs = 0;
            foreach (var component in Components.All)
            {
                double fraction = row.Schedule!.ComputedFraction([component], pipeline.Transformer.NumBlocks, 4);
                Assert.Equal(fraction, row.ComputedFraction[component], 12);
                reusedMacs += (long)Math.Round((1 - fraction) * 4 * pipeline.Transformer.NumBlocks) * budget.PerCall(component);
            }
            Assert.True(reusedMacs > 0, row.Name);
            Assert.Equal(uncached - reusedMacs, row.Macs);
            Assert.True(row.RelativeL2 > 0 && double.IsFinite(row.Psnr), row.Name);
        }
        // FORA 3 over 4 steps computes steps 0 and 3.
        Assert.Equal(0.5, fora.ComputedFraction["attn1"]);
        Assert.Null(pipeline.Transformer.Hook);
    }

    /// <summary>With several runs a row's latency is their median; the images are one run's (every run draws the same).</summary>
    [Fact]
    public void RepeatedRunsReportTheirMedian()
    {
        using var pipeline = DiTPipeline.Load(TestSupport.RepoFile("models", "dit-digits"), TestSupport.Cpu);
        var lines = new List<string>();
        var once = EvalRunner.Run(pipeline, Judge.Value, Tiny(0.1) with { ForaPeriods = [] }, _ => { }, CancellationToken.None);
        var report = EvalRunner.Run(pipeline, Judge.Value, Tiny(0.1) with { ForaPeriods = [], Runs = 3 }, lines.Add, CancellationToken.None);
        Assert.Contains(lines, l => l == "[2/3] no cache: 2 samples, ddim 4 steps, 3 runs");
        Assert.Contains(lines, l => l.StartsWith("[3/3] SmoothCache alpha=0.1: ") && l.EndsWith(" s (median of 3)"));
        Assert.DoesNotContain(lines, l => l.StartsWith("[1/3]") && l.Contains("median"));
        Assert.Equal(once.Images.Keys, report.Images.Keys);
        foreach (var slug in once.Images.Keys) Assert.Equal(once.Images[slug], report.Images[slug]);
    }

    [Fact]
    public void CancellingStopsAtTheNextStepAndRestoresTheModel()
    {
        using var pipeline = DiTPipeline.Load(TestSupport.RepoFile("models", "dit-digits"), TestSupport.Cpu);
        using var cancel = new CancellationTokenSource();
        var lines = new List<string>();

        Assert.ThrowsAny<OperationCanceledException>(() => EvalRunner.Run(pipeline, Judge.Value, Tiny(0.1), line =>
        {
            lines.Add(line);
            if (line.StartsWith("[3/", StringComparison.Ordinal)) cancel.Cancel();
        }, cancel.Token));

        Assert.Equal(5, lines.Count); // runs 1 and 2 started and ended, run 3 started and was stopped
        Assert.Null(pipeline.Transformer.Hook);
    }
}
