namespace SmoothCache.Caching;

/// <summary>
/// The host-side arithmetic of SmoothCache calibration (DESIGN §3): averaging error rows over blocks
/// and scanning them into a schedule. Rows are indexed by lag: row j-1 holds, at index i, the error
/// between the outputs of steps i and i+j.
/// </summary>
public static class CalibrationMath
{
    /// <summary>
    /// Averages raw rows per component type: row j element-wise over the blocks, each index over the
    /// blocks that have an entry there. Components come back in first-seen order.
    /// </summary>
    public static IReadOnlyDictionary<string, double[][]> AverageByComponent(
        IEnumerable<KeyValuePair<ComponentBlock, IReadOnlyList<IReadOnlyList<double>>>> rawRows)
    {
        var byComponent = new Dictionary<string, List<IReadOnlyList<IReadOnlyList<double>>>>();
        var order = new List<string>();
        foreach (var (module, rows) in rawRows)
        {
            if (!byComponent.TryGetValue(module.Component, out var blocks))
            {
                byComponent[module.Component] = blocks = new();
                order.Add(module.Component);
            }
            blocks.Add(rows);
        }
        var averaged = new Dictionary<string, double[][]>();
        foreach (var component in order) averaged[component] = AverageOverBlocks(byComponent[component]);
        return averaged;
    }

    /// <summary>Element-wise mean of each row over the blocks (each index over the blocks that reach it).</summary>
    public static double[][] AverageOverBlocks(IReadOnlyList<IReadOnlyList<IReadOnlyList<double>>> blocks)
    {
        int rowCount = blocks.Count == 0 ? 0 : blocks.Max(b => b.Count);
        var averaged = new double[rowCount][];
        for (int j = 0; j < rowCount; j++)
        {
            var rows = blocks.Where(b => j < b.Count).Select(b => b[j]).ToList();
            int length = rows.Max(r => r.Count);
            var sum = new double[length];
            var count = new int[length];
            foreach (var row in rows)
                for (int i = 0; i < row.Count; i++)
                {
                    sum[i] += row[i];
                    count[i]++;
                }
            averaged[j] = new double[length];
            for (int i = 0; i < length; i++) averaged[j][i] = sum[i] / count[i];
        }
        return averaged;
    }

    /// <summary>
    /// The schedule of <paramref name="length"/> steps from averaged rows (K = rows.Count): at each step
    /// take the largest lag j whose error stays within <paramref name="alpha"/>, compute this step and
    /// reuse it for the next j steps; with none, compute and move on. First and last steps always compute.
    /// NaN errors never pass.
    /// </summary>
    public static bool[] Scan(IReadOnlyList<IReadOnlyList<double>> rows, double alpha, int length)
    {
        CheckThreshold(alpha);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        // Every index gets assigned on the way (computed, or reused within a lag), so none stays unset.
        var schedule = new bool[length];
        int i = 0;
        while (i < length)
        {
            int lag = 0;
            for (int j = rows.Count; j >= 1; j--)
            {
                var row = rows[j - 1];
                if (i < row.Count && row[i] <= alpha) // false for NaN
                {
                    lag = j;
                    break;
                }
            }
            schedule[i] = true;
            for (int s = i + 1; s <= i + lag && s < length; s++) schedule[s] = false;
            i += lag + 1;
        }
        schedule[0] = true;
        schedule[length - 1] = true;
        return schedule;
    }

    /// <summary>
    /// A schedule with one key per component, each the <see cref="Scan"/> of that component's averaged
    /// rows (a component without rows is computed at every step).
    /// </summary>
    public static CacheSchedule ToSchedule(IReadOnlyDictionary<string, double[][]> averagedRows,
        IEnumerable<string> components, double alpha, int steps, string sourceName)
    {
        CheckThreshold(alpha);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        return new CacheSchedule(components.Select(c => new KeyValuePair<string, IReadOnlyList<bool>>(c,
            Scan(averagedRows.TryGetValue(c, out var rows) ? rows : [], alpha, steps))), sourceName);
    }

    internal static void CheckThreshold(double alpha)
    {
        if (!(alpha >= 0))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha,
                "the calibration threshold alpha must be a number >= 0 (the largest relative L1 error to accept)");
    }
}
