using ScottPlot;
using ScottPlot.TickGenerators;
using SmoothCache.Model;

namespace SmoothCache.Cli.Evaluation;

/// <summary>One point of a quality-versus-compute plot: a schedule's name, its cost (computed
/// fraction, TMACs, ...) and its quality (PSNR, accuracy, ...).</summary>
public sealed record QualityPoint(string Label, double Compute, double Quality);

/// <summary>The eval command's PNG plots (ScottPlot 5). Each method renders one figure, encodes it in memory and writes
/// it atomically (<see cref="AtomicFile.WriteAllBytes"/>).</summary>
public static class EvalPlots
{
    private static readonly Color ComputedColor = Color.FromHex("#1f4e8c");
    private static readonly Color ReusedColor = Color.FromHex("#d9d9d9");

    /// <summary>Calibration error curves of one component type: one line per lag j = 1..K
    /// (<paramref name="rowsByLag"/>[j - 1]), x = step index of the entry, y = averaged relative L1 error.
    /// Non-finite entries are left out. <paramref name="threshold"/> (alpha) adds a dashed horizontal line.</summary>
    public static void SaveErrorRows(string path, string component, IReadOnlyList<IReadOnlyList<double>> rowsByLag, double? threshold = null)
    {
        if (rowsByLag.Count == 0)
            throw new ArgumentException($"component {component}: no error rows to plot (expected one per lag)", nameof(rowsByLag));
        var plot = new Plot();
        for (int lag = 1; lag <= rowsByLag.Count; lag++)
        {
            IReadOnlyList<double> row = rowsByLag[lag - 1];
            int[] steps = Enumerable.Range(0, row.Count).Where(i => double.IsFinite(row[i])).ToArray();
            var line = plot.Add.ScatterLine(steps.Select(i => (double)i).ToArray(), steps.Select(i => row[i]).ToArray());
            line.LegendText = $"lag {lag}";
            line.LineWidth = 2;
        }
        if (threshold is double alpha)
        {
            var rule = plot.Add.HorizontalLine(alpha, 1.5f, Colors.Black, LinePattern.Dashed);
            rule.LegendText = $"alpha = {EvalTable.Number(alpha, "G3")}";
        }
        plot.Title($"{component}: averaged error vs step");
        plot.XLabel("step");
        plot.Axes.Bottom.TickGenerator = new NumericAutomatic { IntegerTicksOnly = true };
        plot.YLabel("relative L1 error to the output j steps later");
        plot.ShowLegend(Alignment.UpperLeft);
        Save(plot, path, 900, 500);
    }

    /// <summary>Schedule as a grid: one row per component (first at the top, labelled with its computed
    /// count), one column per step; dark = computed (1), light = reused (0).</summary>
    public static void SaveScheduleHeatmap(string path, IReadOnlyList<(string Component, IReadOnlyList<int> Flags)> rows, string title)
    {
        if (rows.Count == 0)
            throw new ArgumentException("no schedule rows to plot (expected one per component)", nameof(rows));
        var plot = new Plot();
        int steps = rows.Max(r => r.Flags.Count);
        var labels = new string[rows.Count];
        var positions = new double[rows.Count];
        for (int r = 0; r < rows.Count; r++)
        {
            var (component, flags) = rows[r];
            double y = rows.Count - 1 - r;
            for (int s = 0; s < flags.Count; s++)
            {
                if (flags[s] is not (0 or 1))
                    throw new ArgumentException($"schedule {component}[{s}] is {flags[s]}; expected 0 (reuse) or 1 (compute)", nameof(rows));
                var cell = plot.Add.Rectangle(s - 0.5, s + 0.5, y - 0.5, y + 0.5);
                cell.FillColor = flags[s] == 1 ? ComputedColor : ReusedColor;
                cell.LineColor = Colors.White;
                cell.LineWidth = 1;
            }
            positions[r] = y;
            labels[r] = $"{component} ({flags.Count(f => f == 1)}/{flags.Count})";
        }
        plot.Axes.Left.TickGenerator = new NumericManual(positions, labels);
        plot.Axes.SetLimits(-0.5, steps - 0.5, -0.5, rows.Count - 0.5);
        plot.HideGrid();
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "computed", FillColor = ComputedColor });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "reused", FillColor = ReusedColor });
        plot.ShowLegend(Edge.Bottom);
        plot.Title(title);
        plot.XLabel("step");
        plot.Axes.Bottom.TickGenerator = new NumericAutomatic { IntegerTicksOnly = true };
        Save(plot, path, Math.Max(700, 260 + 16 * steps), 170 + 34 * rows.Count);
    }

    /// <summary>Quality against compute, one labelled marker per point. Points with a non-finite
    /// coordinate (e.g. PSNR = inf for the uncached reference) cannot be placed; they are left out and
    /// named in the title. Returns false, writing nothing, when no point can be placed (every schedule
    /// computed everything: PSNR inf throughout).</summary>
    public static bool SaveQualityVsCompute(string path, IReadOnlyList<QualityPoint> points, string xLabel, string yLabel, string title)
    {
        var shown = points.Where(p => double.IsFinite(p.Compute) && double.IsFinite(p.Quality)).ToList();
        if (shown.Count == 0) return false;
        var plot = new Plot();
        plot.Add.Markers(shown.Select(p => p.Compute).ToArray(), shown.Select(p => p.Quality).ToArray(), MarkerShape.FilledCircle, 9, ComputedColor);
        foreach (QualityPoint point in shown)
        {
            var label = plot.Add.Text(point.Label, point.Compute, point.Quality);
            label.LabelFontSize = 12;
            label.LabelAlignment = Alignment.LowerLeft;
            label.OffsetX = 6;
            label.OffsetY = -4;
        }
        var hidden = points.Where(p => !shown.Contains(p))
            .Select(p => $"{p.Label} (x = {EvalTable.Number(p.Compute)}, y = {EvalTable.Number(p.Quality)})").ToList();
        // One line per point left out: on one line they ran past the figure's edge.
        plot.Title(hidden.Count == 0 ? title : $"{title}\nnot shown: {string.Join("\n", hidden)}");
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        var (left, right) = PaddedRange(shown.Select(p => p.Compute), 0.08, 0.3); // room for labels right of points
        var (bottom, top) = PaddedRange(shown.Select(p => p.Quality), 0.08, 0.12);
        plot.Axes.SetLimits(left, right, bottom, top);
        Save(plot, path, 900, 600);
        return true;
    }

    /// <summary>[min, max] widened by fractions of its span (of 1 when all values are equal).</summary>
    private static (double Low, double High) PaddedRange(IEnumerable<double> values, double below, double above)
    {
        double min = values.Min(), max = values.Max();
        double span = max > min ? max - min : Math.Max(Math.Abs(max), 1);
        return (min - below * span, max + above * span);
    }

    private static void Save(Plot plot, string path, int width, int height)
    {
        using var image = plot.GetImage(width, height);
        AtomicFile.WriteAllBytes(path, image.GetImageBytes(ImageFormat.Png, 100));
    }
}
