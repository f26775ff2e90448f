using System.CommandLine;
using System.Globalization;
using SmoothCache.Cli.Evaluation;
using SmoothCache.Kernels;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Commands;

/// <summary>
/// `smoothcache eval` (issue 7): no-cache vs calibrated SmoothCache schedules vs FORA on the same
/// noise, with compute, wall time, closeness to the uncached samples, class accuracy and Fréchet
/// distance; writes tables, JSON, plots and schedules into --out. Ctrl-C stops at the next denoising
/// step and writes nothing (exit 130).
/// </summary>
public static class EvalCommand
{
    public const int Interrupted = 130;

    public static Command Create(CliContext context)
    {
        var sampling = new SamplingOptions();
        var samples = new Option<int>("--samples") { Description = "images per schedule (labels cycle 0..9)", DefaultValueFactory = _ => 10 };
        var thresholds = new Option<string>("--thresholds") { Description = "comma-separated calibration thresholds alpha (>= 0), one SmoothCache schedule each", DefaultValueFactory = _ => "0.05,0.1,0.15,0.2,0.3" };
        var fora = new Option<string>("--fora") { Description = "comma-separated FORA periods n (>= 2), one schedule each; empty for none", DefaultValueFactory = _ => "2,3" };
        var components = new Option<string>("--components") { Description = "components to calibrate and cache: attn1, ff (aliases attn, mlp)", DefaultValueFactory = _ => "attn1,ff" };
        var runs = new Option<int>("--runs") { Description = "timed runs of each schedule's job; its latency is their median", DefaultValueFactory = _ => 1 };
        var lookahead = new Option<int>("--lookahead") { Description = "calibration lookahead K (largest reuse lag)", DefaultValueFactory = _ => 3 };
        var output = new Option<string>("--out") { Description = "folder for table.md, results.csv/json, plots and schedules", Required = true };
        var command = new Command("eval", "Compare SmoothCache schedules with no cache and FORA on the same noise: compute, wall time, quality.");
        sampling.Seed.Description = "seed of the initial noise";
        sampling.Model.Description = "a model of 16x16 one-channel digits, which eval's classifier judges (the embedded dit-digits, " +
                                     "looked up in the working directory, then next to the program)";
        foreach (var option in new Option[] { sampling.Model, sampling.Seed, sampling.Steps, sampling.Scheduler, sampling.Guidance, sampling.Device, sampling.Precision,
                     samples, thresholds, fora, components, lookahead, runs, output })
            command.Add(option);
        command.SetAction(parse =>
        {
            var run = sampling.Resolve(parse);
            string folder = UserErrors.OutputFolder("--out", parse.GetValue(output)!);
            if (CachingOptions.LookaheadWarning(parse.GetValue(lookahead), run.Steps) is { } lookaheadWarning) context.Error.WriteLine(lookaheadWarning);
            var settings = new EvalSettings(
                // The Fréchet distance needs two samples for a covariance.
                CheckAtLeast("--samples", parse.GetValue(samples), 2), run.Steps, run.Scheduler,
                run.Guidance, run.Seed, ParseThresholds(parse.GetValue(thresholds)!), ParseForaPeriods(parse.GetValue(fora)!),
                CachingOptions.ParseComponents(parse.GetValue(components)!), CheckAtLeast("--lookahead", parse.GetValue(lookahead), 1),
                CheckAtLeast("--runs", parse.GetValue(runs), 1));
            using var cancel = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                if (cancel.IsCancellationRequested) return; // a second Ctrl-C ends the process
                e.Cancel = true;
                context.Error.WriteLine("eval: interrupted; stopping at the next denoising step (Ctrl-C again to kill)");
                cancel.Cancel();
            };
            Console.CancelKeyPress += onCancel;
            try
            {
                return Execute(context, run.ModelFolder, run.Device, run.Precision, settings, folder, cancel.Token);
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
        });
        return command;
    }

    /// <summary>Loads the model and the judge, runs every schedule, then writes the outputs; a cancelled
    /// <paramref name="cancel"/> returns <see cref="Interrupted"/> with nothing written.</summary>
    public static int Execute(CliContext context, string modelFolder, DeviceChoice device, Precision precision, EvalSettings settings,
        string outFolder, CancellationToken cancel)
    {
        try
        {
            cancel.ThrowIfCancellationRequested();
            using var backend = Backend.Create(device);
            using var pipeline = DiTPipeline.Load(modelFolder, backend, precision);
            CheckDigitsModel(pipeline);
            int most = pipeline.MaxImages(settings.Guidance > 1);
            if (settings.Samples > most)
                throw new UserInputException($"--samples {settings.Samples} is more than one generation of this model takes " +
                                             $"({most}): its kernels index activations in 32 bits");
            context.Error.WriteLine($"eval: training the digit classifier on {DigitsDataset.DefaultPath}");
            var judge = DigitJudge.Train(DigitsDataset.Load(DigitsDataset.DefaultPath));
            context.Error.WriteLine($"eval: classifier held-out accuracy {100 * judge.HeldOutAccuracy:F1}% on {judge.HeldOutCount} digits");
            var report = EvalRunner.Run(pipeline, judge, settings, line => context.Error.WriteLine($"eval: {line}"), cancel);
            var written = EvalOutputs.Write(report, outFolder, warning => context.Error.WriteLine($"warning: {warning}"));
            context.Out.Write(EvalOutputs.Markdown(report));
            context.Out.WriteLine($"wrote {written.Count} files to {outFolder} ({backend.DeviceName})");
            return ExitCodes.Success;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            context.Error.WriteLine($"eval: interrupted before writing; nothing was written to {outFolder}");
            return Interrupted;
        }
    }

    /// <summary>The judge scores 16x16 one-channel pixel-space digits; other models cannot be judged.</summary>
    private static void CheckDigitsModel(DiTPipeline pipeline)
    {
        var c = pipeline.Transformer.Config;
        if (c.InChannels != 1 || c.SampleSize != DigitsDataset.Side)
            throw new UserInputException(
                $"--model {pipeline.Folder}: eval judges 16x16 one-channel digits (dit-digits); this model makes " +
                $"{c.InChannels}-channel {c.SampleSize}x{c.SampleSize} samples");
    }

    private static int CheckAtLeast(string option, int value, int min) =>
        value >= min ? value : throw new UserInputException($"{option} must be at least {min}, got {value}");

    public static IReadOnlyList<double> ParseThresholds(string list) => CachingOptions.ListItems("--thresholds", list).Select(item =>
            double.TryParse(item, NumberStyles.Float, CultureInfo.InvariantCulture, out double alpha) && alpha >= 0 && double.IsFinite(alpha)
                ? alpha
                : throw new UserInputException($"--thresholds: '{item}' is not a number >= 0 (expected e.g. 0.05,0.1,0.15)"))
        .Distinct().ToArray();

    public static IReadOnlyList<int> ParseForaPeriods(string list) => CachingOptions.ListItems("--fora", list).Select(item =>
            int.TryParse(item, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 2
                ? n
                : throw new UserInputException($"--fora: '{item}' is not a whole number >= 2 (FORA computes every n-th step)"))
        .Distinct().ToArray();
}
