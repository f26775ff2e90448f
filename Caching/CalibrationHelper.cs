using System.Text.Json;
using System.Text.Json.Nodes;
using SmoothCache.Kernels;
using SmoothCache.Model;

namespace SmoothCache.Caching;

/// <summary>
/// SmoothCache calibration (DESIGN §3): every component output is compared with the outputs of the
/// previous <see cref="Lookahead"/> calls of the same (component, block); the relative L1 errors form
/// one row per lag, which are averaged over blocks and scanned into a schedule.
/// </summary>
public sealed class CalibrationHelper : IComponentHook, IDisposable
{
    private readonly HookAttachment _attachment;
    private readonly HashSet<string> _calibrated;
    // Most recent first; each an owner of its storage.
    private readonly Dictionary<ComponentBlock, List<Tensor>> _history = new();
    private readonly Dictionary<ComponentBlock, List<double>[]> _rows = new();
    private bool _disposed;

    /// <summary>K (at least 1): each output is compared with those of the K calls before it, one error row per lag 1..K.</summary>
    public int Lookahead { get; }

    /// <summary>The canonical components ("attn1", "ff") being calibrated.</summary>
    public IReadOnlyList<string> Components { get; }

    private CalibrationHelper(IHookable model, int lookahead, IReadOnlyList<string> components)
    {
        Lookahead = lookahead;
        Components = components;
        _calibrated = components.ToHashSet();
        _attachment = HookAttachment.Attach(model, this);
    }

    /// <exception cref="ArgumentOutOfRangeException">lookahead &lt; 1</exception>
    /// <exception cref="InvalidOperationException">a cache or calibration helper is already enabled on the model</exception>
    public static CalibrationHelper Enable(IHookable model, int lookahead, IEnumerable<string> components)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(components);
        if (lookahead < 1)
            throw new ArgumentOutOfRangeException(nameof(lookahead), lookahead,
                "the calibration lookahead must be at least 1 (how many earlier steps each output is compared with)");
        var selected = ComponentNames.CanonicalSet(components);
        if (selected.Count == 0) throw new ArgumentException("no components to calibrate: expected some of " + ComponentNames.Expected);
        return new CalibrationHelper(model, lookahead, selected);
    }

    /// <summary>Computes the component. For a calibrated one, appends the relative L1 error sum|earlier - output| / sum|output|
    /// against each of the last K outputs of this (component, block) to that lag's row, then keeps the output in place of the
    /// oldest; other components pass through. Returns the output, owned by the caller.</summary>
    /// <exception cref="ObjectDisposedException">the helper was disposed</exception>
    /// <exception cref="NotSupportedException">a calibrated component runs inside a launch recording</exception>
    public Tensor Run(string component, int block, Func<Tensor> compute)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var output = compute();
        var canonical = ComponentNames.CanonicalOrNull(component);
        if (canonical is null || !_calibrated.Contains(canonical)) return output;
        if (output.Backend.IsRecording)
        {
            output.Dispose();
            throw new NotSupportedException(RecordingRefusal);
        }

        var key = new ComponentBlock(canonical, block);
        if (!_history.TryGetValue(key, out var history))
        {
            _history[key] = history = new List<Tensor>();
            _rows[key] = Enumerable.Range(0, Lookahead).Select(_ => new List<double>()).ToArray();
        }
        // history[j] is the output of lag j+1; its error goes to row j.
        var errors = RelativeL1Kernel.Compute(output, history);
        for (int j = 0; j < errors.Length; j++) _rows[key][j].Add(errors[j]);

        history.Insert(0, output.Share());
        if (history.Count > Lookahead)
        {
            history[^1].Dispose();
            history.RemoveAt(history.Count - 1);
        }
        return output;
    }

    /// <summary>Always refused: the helper reads every step's errors on the host, which a launch recording cannot hold.</summary>
    public string RecordingRefusal => "a CalibrationHelper reads every step's errors on the host, which a launch recording " +
                                      "cannot hold: calibrate with DiTPipeline.Generate, then record with the schedule it makes";

    /// <summary>Raw error rows per (component, block), ordered by block then component: row j = lag j+1, in call order.</summary>
    public IReadOnlyList<KeyValuePair<ComponentBlock, IReadOnlyList<IReadOnlyList<double>>>> ErrorRows =>
        _rows.OrderBy(kv => kv.Key.Block).ThenBy(kv => IndexOf(kv.Key.Component))
            .Select(kv => new KeyValuePair<ComponentBlock, IReadOnlyList<IReadOnlyList<double>>>(
                kv.Key, kv.Value.Select(row => (IReadOnlyList<double>)row.ToArray()).ToArray()))
            .ToList();

    private int IndexOf(string component) => Components.ToList().IndexOf(component);

    /// <summary>Rows averaged over blocks, per component type.</summary>
    public IReadOnlyDictionary<string, double[][]> AveragedRows() => CalibrationMath.AverageByComponent(ErrorRows);

    /// <summary>Steps calibrated since the last reset: the most calls any calibrated (component, block) has had (0 before
    /// the first generation).</summary>
    public int CalibratedSteps => _rows.Count == 0 ? 0 : _rows.Values.Max(rows => rows[0].Count) + 1;

    /// <summary>The schedule for threshold <paramref name="alpha"/>: one key per calibrated component, <paramref name="steps"/>
    /// long, the number of steps calibrated (<see cref="CalibratedSteps"/>: a schedule is made for the run it was measured on).</summary>
    /// <exception cref="ArgumentOutOfRangeException">alpha &lt; 0, or steps other than the steps calibrated</exception>
    /// <exception cref="InvalidOperationException">nothing has been calibrated yet</exception>
    public CacheSchedule Schedule(double alpha, int steps)
    {
        CalibrationMath.CheckThreshold(alpha);
        int calibrated = CalibratedSteps;
        if (calibrated == 0)
            throw new InvalidOperationException("nothing calibrated yet: run a generation with the helper enabled, then ask for its schedule");
        if (steps != calibrated)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"the helper calibrated a run of {calibrated} steps, and its schedule is for that run: ask for {calibrated} steps, " +
                $"or calibrate a run of {steps} (each generation starts the calibration over, and one cancelled or failed part way " +
                "leaves only the steps it ran)");
        return CalibrationMath.ToSchedule(AveragedRows(), Components, alpha, steps, $"calibrated schedule (alpha {alpha}, {steps} steps)");
    }

    /// <summary>
    /// Writes {"lookahead": K, "avg_error_rows": {component: rows}, "raw_error_rows": {"transformer_blocks.b.c": rows}}
    /// atomically.
    /// </summary>
    public void WriteErrorsJson(string path)
    {
        var averaged = new JsonObject();
        foreach (var (component, rows) in AveragedRows()) averaged[component] = ToJson(rows);
        var raw = new JsonObject();
        foreach (var (module, rows) in ErrorRows) raw[module.ModuleName] = ToJson(rows);
        var root = new JsonObject { ["lookahead"] = Lookahead, ["avg_error_rows"] = averaged, ["raw_error_rows"] = raw };
        AtomicFile.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    private static JsonArray ToJson(IEnumerable<IEnumerable<double>> rows) =>
        new(rows.Select(row => (JsonNode)new JsonArray(row.Select(e => (JsonNode)JsonValue.Create(e)).ToArray())).ToArray());

    /// <summary>Starts over: recorded errors and kept outputs dropped (a pipeline's generation does this first, so the rows
    /// are one generation's: errors across two runs' boundary would mean nothing).</summary>
    public void Reset()
    {
        ReleaseHistory();
        _rows.Clear();
    }

    private void ReleaseHistory()
    {
        foreach (var history in _history.Values)
            foreach (var tensor in history) tensor.Dispose();
        _history.Clear();
    }

    /// <summary>Disables: the previous hook comes back and kept outputs are released; the error rows stay readable.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _attachment.Detach();
        ReleaseHistory();
    }
}
