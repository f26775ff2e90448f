using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SmoothCache.Cli.Output;
using SmoothCache.Model;

namespace SmoothCache.Cli.Evaluation;

/// <summary>
/// Writes an <see cref="EvalReport"/> into a folder, every file atomically: table.md, results.csv,
/// results.json, calibration-errors.json, schedules/&lt;slug&gt;.json (each calibrated schedule),
/// errors-&lt;component&gt;.png, schedule-&lt;slug&gt;.png, accuracy-vs-tmacs.png, psnr-vs-tmacs.png and
/// samples-&lt;slug&gt;.png (the digits of each schedule).
/// </summary>
public static class EvalOutputs
{
    public static readonly string[] MarkdownColumns =
        ["schedule", "steps", "compute", "TMACs", "latency (s)", "speedup", "rel L2", "PSNR (dB)", "accuracy", "FD"];

    public static readonly string[] CsvColumns =
    [
        "schedule", "kind", "alpha", "fora_n", "steps", .. Components.All.Select(c => $"computed_{c}"),
        "macs", "tmacs", "latency_s", "speedup", "rel_l2", "psnr_db", "accuracy", "fd",
    ];

    /// <summary>Writes every output; returns the paths written. A quality plot with no point to place is left out (and an
    /// earlier run's removed), told to <paramref name="warn"/>.</summary>
    public static IReadOnlyList<string> Write(EvalReport report, string folder, Action<string>? warn = null)
    {
        var written = new List<string>();
        string Path(string name)
        {
            string path = System.IO.Path.Combine(folder, name);
            written.Add(path);
            return path;
        }

        AtomicFile.WriteAllText(Path("table.md"), Markdown(report));
        CsvTable(report).WriteCsv(Path("results.csv"));
        AtomicFile.WriteAllText(Path("results.json"), Json(report).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        report.Calibration.WriteErrorsJson(Path("calibration-errors.json"));

        foreach (var (component, rows) in report.Calibration.AveragedRows())
            EvalPlots.SaveErrorRows(Path($"errors-{component}.png"), component, rows);
        foreach (var row in report.Rows.Where(r => r.Kind == ScheduleKind.SmoothCache))
        {
            AtomicFile.WriteAllText(Path($"schedules/{row.Slug}.json"), row.Schedule!.ToJson());
            var flags = row.Schedule.Keys
                .Select(k => (k, (IReadOnlyList<int>)row.Schedule[k].Select(f => f ? 1 : 0).ToArray())).ToList();
            EvalPlots.SaveScheduleHeatmap(Path($"schedule-{row.Slug}.png"), flags,
                $"{row.Name}, {report.Settings.Scheduler} {report.Settings.Steps} steps");
        }

        var points = report.Rows.Select(r => (Row: r, Tmacs: r.Macs / 1e12)).ToList();
        string setup = $"{report.Settings.Scheduler} {report.Settings.Steps} steps, {report.Settings.Samples} samples";
        void QualityPlot(string name, Func<EvalRow, double> quality, string yLabel, string title)
        {
            string path = System.IO.Path.Combine(folder, name);
            if (EvalPlots.SaveQualityVsCompute(path, points.Select(p => new QualityPoint(p.Row.Name, p.Tmacs, quality(p.Row))).ToList(),
                    "TMACs", yLabel, $"{title} ({setup})"))
            {
                written.Add(path);
                return;
            }
            File.Delete(path);
            warn?.Invoke($"{name} not drawn: no schedule has a finite {yLabel} and compute (did every one compute every step?)");
        }
        QualityPlot("accuracy-vs-tmacs.png", r => 100 * r.Accuracy, "class accuracy (%)", "Class accuracy vs compute");
        QualityPlot("psnr-vs-tmacs.png", r => r.Psnr, "PSNR vs no cache (dB)", "PSNR vs compute");

        var names = report.Labels.Select(l => l.ToString(CultureInfo.InvariantCulture)).ToArray();
        foreach (var row in report.Rows)
            ImageGrid.SavePng(Path($"samples-{row.Slug}.png"), report.Images[row.Slug], report.ImageShape, names);
        RemoveStale(folder, written, warn);
        return written;
    }

    /// <summary>The outputs an earlier eval left in <paramref name="folder"/> for schedules this run did not make (files named
    /// as eval names its per-schedule and per-component outputs, by the schedules' slugs) are removed, so the folder describes
    /// one run; other files stay.</summary>
    private static void RemoveStale(string folder, IReadOnlyList<string> written, Action<string>? warn)
    {
        var kept = written.Select(System.IO.Path.GetFullPath).ToHashSet();
        var stale = new[]
            {
                ("", "errors-attn1.png"), ("", "errors-ff.png"), ("", "schedule-alpha-*.png"), ("", "samples-no-cache.png"),
                ("", "samples-alpha-*.png"), ("", "samples-fora-*.png"), ("schedules", "alpha-*.json"),
            }
            .Select(p => (Folder: System.IO.Path.Combine(folder, p.Item1), Pattern: p.Item2))
            .Where(p => Directory.Exists(p.Folder))
            .SelectMany(p => Directory.GetFiles(p.Folder, p.Pattern))
            .Where(f => !kept.Contains(System.IO.Path.GetFullPath(f))).Order().ToList();
        foreach (var file in stale) File.Delete(file);
        if (stale.Count > 0)
            warn?.Invoke($"removed {stale.Count} outputs of an earlier eval for schedules this run did not make: " +
                         string.Join(", ", stale.Select(f => System.IO.Path.GetRelativePath(folder, f))));
    }

    public static string Markdown(EvalReport report)
    {
        var s = report.Settings;
        var table = new EvalTable(MarkdownColumns);
        foreach (var r in report.Rows)
            table.AddRow(r.Name, Int(r.Steps),
                string.Join(", ", r.ComputedFraction.Select(kv => $"{kv.Key} {Percent(kv.Value)}")),
                EvalTable.Number(r.Macs / 1e12, "G4"), EvalTable.Number(r.Latency.TotalSeconds, "F2"),
                EvalTable.Number(r.Speedup, "F2") + "x", EvalTable.Number(r.RelativeL2, "F4"),
                EvalTable.Number(r.Psnr, "F2"), Percent(r.Accuracy), EvalTable.Number(r.FrechetDistance, "F2"));
        return
            $"{s.Samples} samples (labels cycling 0..9, seed {s.Seed}), {s.Scheduler} {s.Steps} steps, guidance {Num(s.Guidance)}, " +
            $"model {report.Model}, device {report.Device}, {report.Precision}.\n" +
            $"Calibration: lookahead {s.Lookahead} on {string.Join(", ", s.Components)}. " +
            $"compute = fraction of attn1/ff calls computed; TMACs for all {s.Samples} images (transformer batch {report.ForwardBatch}); " +
            "rel L2 and PSNR against the no-cache images (same noise); " +
            $"accuracy = digit classifier (held-out accuracy {Percent(report.Judge.HeldOutAccuracy)} on {report.Judge.HeldOutCount} real digits); " +
            $"FD = Fréchet distance to the {report.Judge.RealCount} real digits in the classifier's feature space " +
            $"({s.Samples} real held-out digits score {EvalTable.Number(report.RealFrechetFloor, "F2")}).\n\n" +
            table.ToMarkdown();
    }

    public static EvalTable CsvTable(EvalReport report)
    {
        var table = new EvalTable(CsvColumns);
        foreach (var r in report.Rows)
            table.AddRow([
                r.Name, Kind(r.Kind), r.Alpha is double a ? EvalTable.Number(a) : "", r.ForaPeriod is int n ? Int(n) : "",
                Int(r.Steps), .. Components.All.Select(c => EvalTable.Number(r.ComputedFraction[c])),
                r.Macs.ToString(CultureInfo.InvariantCulture), EvalTable.Number(r.Macs / 1e12),
                EvalTable.Number(r.Latency.TotalSeconds), EvalTable.Number(r.Speedup), EvalTable.Number(r.RelativeL2),
                EvalTable.Number(r.Psnr), EvalTable.Number(r.Accuracy), EvalTable.Number(r.FrechetDistance),
            ]);
        return table;
    }

    /// <summary>The report as JSON; non-finite numbers (PSNR of the reference itself, FD of one sample) are null.</summary>
    public static JsonObject Json(EvalReport report)
    {
        var s = report.Settings;
        var rows = new JsonArray();
        foreach (var r in report.Rows)
            rows.Add(new JsonObject
            {
                ["schedule"] = r.Name,
                ["kind"] = Kind(r.Kind),
                ["alpha"] = r.Alpha,
                ["fora_n"] = r.ForaPeriod,
                ["steps"] = r.Steps,
                ["computed_fraction"] = new JsonObject(r.ComputedFraction.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                ["macs"] = r.Macs,
                ["tmacs"] = r.Macs / 1e12,
                ["latency_s"] = r.Latency.TotalSeconds,
                ["speedup"] = Finite(r.Speedup),
                ["rel_l2"] = Finite(r.RelativeL2),
                ["psnr_db"] = Finite(r.Psnr),
                ["accuracy"] = r.Accuracy,
                ["fd"] = Finite(r.FrechetDistance),
                ["schedule_file"] = r.Kind == ScheduleKind.SmoothCache ? $"schedules/{r.Slug}.json" : null,
            });
        return new JsonObject
        {
            ["model"] = report.Model,
            ["device"] = report.Device,
            ["precision"] = report.Precision,
            ["scheduler"] = s.Scheduler,
            ["steps"] = s.Steps,
            ["samples"] = s.Samples,
            ["labels"] = new JsonArray(report.Labels.Select(l => (JsonNode)l).ToArray()),
            ["guidance"] = s.Guidance,
            ["seed"] = s.Seed,
            ["lookahead"] = s.Lookahead,
            ["components"] = new JsonArray(s.Components.Select(c => (JsonNode)c).ToArray()),
            ["forward_batch"] = report.ForwardBatch,
            ["macs_per_forward"] = new JsonObject
            {
                ["total"] = report.Macs.ForwardMacs,
                ["always_computed"] = report.Macs.AlwaysComputedPerForward,
                ["blocks"] = report.Macs.Blocks,
                ["attn1_per_call"] = report.Macs.AttentionMacsPerCall,
                ["ff_per_call"] = report.Macs.FeedForwardMacsPerCall,
            },
            ["classifier"] = new JsonObject
            {
                ["held_out_accuracy"] = report.Judge.HeldOutAccuracy,
                ["held_out_count"] = report.Judge.HeldOutCount,
                ["train_count"] = report.Judge.TrainCount,
            },
            ["real_digits"] = report.Judge.RealCount,
            ["real_fd_floor"] = Finite(report.RealFrechetFloor),
            ["calibration_vs_plain_rel_l2"] = report.CalibrationVsPlainRelativeL2,
            ["rows"] = rows,
        };
    }

    private static JsonNode? Finite(double value) => double.IsFinite(value) ? JsonValue.Create(value) : null;

    private static string Kind(ScheduleKind kind) => kind switch
    {
        ScheduleKind.SmoothCache => "smoothcache",
        ScheduleKind.Fora => "fora",
        _ => "no-cache",
    };

    private static string Percent(double fraction) => EvalTable.Number(100 * fraction, "F1") + "%";

    private static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Num(double value) => EvalTable.Number(value);
}
