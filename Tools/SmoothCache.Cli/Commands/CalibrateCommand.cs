using System.CommandLine;
using System.Globalization;
using SmoothCache.Caching;
using SmoothCache.Cli.Output;
using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Commands;

/// <summary>
/// `smoothcache calibrate`: one uncached sampling run records each component's relative-L1 change
/// between steps (lags 1..K), and the averaged rows are scanned into a schedule (DESIGN §3).
/// With --target-compute the threshold is searched so the schedule computes at most that fraction.
/// </summary>
public static class CalibrateCommand
{
    public static Command Create(CliContext context)
    {
        var options = new SamplingOptions();
        var components = new Option<string>("--components") { Description = "components to calibrate (attn1, ff)", DefaultValueFactory = _ => "attn1,ff" };
        var lookahead = new Option<int>("--lookahead") { Description = "largest lag K compared (skip up to K steps)", DefaultValueFactory = _ => 3 };
        var threshold = new Option<double>("--threshold") { Description = "alpha: skip while the averaged error stays at or below it (not with --target-compute)", DefaultValueFactory = _ => 0.15 };
        var target = new Option<double?>("--target-compute") { Description = "search alpha so that at most this fraction of calls is computed (0..1]" };
        var output = new Option<string>("--out") { Description = "schedule JSON to write", Required = true };
        var errors = new Option<string?>("--errors") { Description = "JSON file for the averaged and raw error rows" };
        var fromErrors = new Option<string?>("--from-errors") { Description = "rescan an --errors file with a new threshold instead of sampling (its steps unless --steps; the other sampling options are not used)" };
        var command = new Command("calibrate", "Calibrate a SmoothCache schedule from one sampling run.")
        {
            components, lookahead, threshold, target, output, errors, fromErrors,
        };
        options.AddTo(command);
        command.SetAction(parse =>
        {
            string schedulePath = UserErrors.OutputFile("--out", parse.GetValue(output), ".json")!;
            string? errorsPath = UserErrors.OutputFile("--errors", parse.GetValue(errors), ".json");
            UserErrors.DistinctOutputs(("--out", schedulePath), ("--errors", errorsPath));
            var selected = CachingOptions.ParseComponents(parse.GetValue(components)!);
            int k = parse.GetValue(lookahead);
            if (k < 1) throw new UserInputException($"--lookahead must be at least 1, got {k}");
            double alpha = parse.GetValue(threshold);
            if (!(alpha >= 0)) throw new UserInputException($"--threshold must be >= 0, got {alpha}");
            double? targetCompute = parse.GetValue(target);
            if (targetCompute is { } t && !(t > 0 && t <= 1))
                throw new UserInputException($"--target-compute must be in (0, 1], got {t}");
            // Each sets the threshold: given both, one would be silently ignored.
            if (targetCompute is not null && parse.GetResult(threshold) is { Implicit: false })
                throw new UserInputException("--threshold and --target-compute exclude each other: the target searches the threshold");
            if (targetCompute is not null && parse.GetValue(fromErrors) is not null)
                throw new UserInputException("--target-compute and --from-errors exclude each other: rescan an errors file with --threshold");

            if (parse.GetValue(fromErrors) is { } errorsFile)
            {
                var rows = ReadAveragedRows(errorsFile);
                var used = selected.Where(rows.ContainsKey).ToArray();
                if (used.Length == 0)
                    throw new UserInputException($"--from-errors: {errorsFile} holds no rows for {string.Join(", ", selected)} (it has {string.Join(", ", rows.Keys)})");
                // The lag-1 row holds one error per step after the first: the run's steps, unless --steps says otherwise.
                int recorded = rows[used[0]] is [var lag1, ..] ? lag1.Length + 1
                    : throw new UserInputException($"--from-errors: {errorsFile}: key 'avg_error_rows': {used[0]} has no rows");
                int steps = parse.GetResult(options.Steps) is { Implicit: false } ? options.ResolveSteps(parse) : recorded;
                if (steps != recorded)
                    context.Error.WriteLine($"warning: {errorsFile} was recorded over {recorded} steps: a {steps}-step schedule from it " +
                                            (steps > recorded ? "computes every step past them" : "leaves its later steps out"));
                var ignored = new Option[] { lookahead, errors, options.Model, options.Labels, options.Seed, options.Noise,
                        options.Scheduler, options.Guidance, options.Device, options.Precision }
                    .Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToArray();
                if (ignored.Length > 0)
                    context.Error.WriteLine($"warning: --from-errors rescans recorded errors without sampling: {string.Join(", ", ignored)} ignored");
                var rescanned = CalibrationMath.ToSchedule(rows, used, alpha, steps, errorsFile);
                rescanned.Save(schedulePath);
                context.Out.WriteLine($"wrote {schedulePath}: alpha {alpha.ToString("G6", CultureInfo.InvariantCulture)} from {errorsFile}, " +
                    $"{steps} steps");
                return ExitCodes.Success;
            }

            var run = options.Resolve(parse);
            if (CachingOptions.LookaheadWarning(k, run.Steps) is { } lookaheadWarning) context.Error.WriteLine(lookaheadWarning);
            using var backend = Backend.Create(run.Device);
            using var pipeline = DiTPipeline.Load(run.ModelFolder, backend, run.Precision);
            var generation = run.ToGenerationOptions(pipeline);
            foreach (var warning in pipeline.LabelWarnings(generation.Labels))
                context.Error.WriteLine($"warning: {warning}");
            using var calibration = CalibrationHelper.Enable(pipeline.Transformer, k, selected);
            var result = Progress.Run(context, "calibrate", generation.Steps,
                report => pipeline.Generate(generation, step => report(step.Index + 1)));
            if (run.NonFiniteWarning(result) is { } nonFinite) context.Error.WriteLine($"warning: {nonFinite}; its errors are too");

            int blocks = pipeline.Transformer.NumBlocks;
            if (targetCompute is { } goal) alpha = SearchThreshold(calibration, goal, generation.Steps, selected, blocks);
            var schedule = calibration.Schedule(alpha, generation.Steps);
            schedule.Save(schedulePath);
            if (errorsPath is not null) calibration.WriteErrorsJson(errorsPath);
            double fraction = schedule.ComputedFraction(selected, blocks, generation.Steps);
            if (targetCompute is { } wanted && fraction > wanted)
                context.Error.WriteLine($"warning: no threshold computes at most {100 * wanted:F1}% of the calls in {generation.Steps} steps " +
                    $"(the first and last steps always are): the schedule computes {100 * fraction:F1}%");
            context.Out.WriteLine($"wrote {schedulePath}: alpha {alpha.ToString("G6", CultureInfo.InvariantCulture)}, " +
                $"computes {100 * fraction:F1}% of {string.Join("+", selected)} calls over {generation.Steps} steps");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The averaged rows of an --errors file: component -> K rows.</summary>
    public static Dictionary<string, double[][]> ReadAveragedRows(string path)
    {
        if (PathProblems.ForFile(path) is { } problem) throw new UserInputException($"--from-errors: '{path}': {problem}");
        System.Text.Json.JsonDocument doc;
        try
        {
            doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new UserInputException($"--from-errors: {path}: {JsonErrors.Describe(e)}");
        }
        using (doc)
        {
            if (!doc.RootElement.TryGetProperty("avg_error_rows", out var averaged) || averaged.ValueKind != System.Text.Json.JsonValueKind.Object)
                throw new UserInputException($"{path}: key 'avg_error_rows': expected an object of component -> rows");
            Dictionary<string, double[][]> rows;
            try
            {
                rows = averaged.EnumerateObject().ToDictionary(c => c.Name,
                    c => c.Value.EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray());
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
            {
                throw new UserInputException($"{path}: key 'avg_error_rows': expected lists of numbers ({e.Message})");
            }
            foreach (var (component, lags) in rows) CheckRows(path, component, lags);
            if (rows.Values.Select(lags => lags[0].Length).Distinct().Count() > 1)
                throw new UserInputException($"{path}: key 'avg_error_rows': its components' rows are of different runs (" +
                                             string.Join(", ", rows.Select(r => $"{r.Key}: {r.Value[0].Length + 1} steps")) + ")");
            return rows;
        }
    }

    /// <summary>Refuses rows that a calibration of one run cannot have written: row j (lag j + 1) of an n-step run holds
    /// the n - 1 - j errors between steps i and i + j + 1, each a relative L1 error, so a number >= 0.</summary>
    private static void CheckRows(string path, string component, double[][] lags)
    {
        string key = $"key 'avg_error_rows': {component}";
        if (lags.Length == 0) throw new UserInputException($"{path}: {key} has no rows");
        int steps = lags[0].Length + 1;
        for (int j = 0; j < lags.Length; j++)
        {
            int expected = Math.Max(0, steps - 1 - j);
            if (lags[j].Length != expected)
                throw new UserInputException($"{path}: {key}: the lag-{j + 1} row has {lags[j].Length} errors; a {steps}-step run " +
                                             $"(its lag-1 row has {steps - 1}) gives {expected}");
            int bad = Array.FindIndex(lags[j], e => !(e >= 0));
            if (bad >= 0)
                throw new UserInputException($"{path}: {key}: the lag-{j + 1} row's error {bad} is {lags[j][bad]}: expected a relative error >= 0");
        }
    }

    /// <summary>
    /// The smallest alpha whose schedule computes at most <paramref name="target"/> of the calls. The
    /// scan only changes where alpha crosses a recorded error, so those values are the candidates.
    /// </summary>
    public static double SearchThreshold(CalibrationHelper calibration, double target, int steps, string[] components, int blocks)
    {
        var candidates = calibration.AveragedRows().Values.SelectMany(rows => rows.SelectMany(r => r))
            .Where(double.IsFinite).Append(0).Distinct().Order().ToArray();
        foreach (var alpha in candidates)
            if (calibration.Schedule(alpha, steps).ComputedFraction(components, blocks, steps) <= target)
                return alpha;
        return candidates[^1];
    }
}
