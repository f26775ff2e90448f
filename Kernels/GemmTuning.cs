using System.Text.Json;
using System.Text.Json.Nodes;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Kernels;

/// <summary>An fp16 tensor-core GEMM a backend launched (<see cref="Backend.GemmLog"/>): its shape, variant and split,
/// its epilogue and whether it wrote fp16.</summary>
internal readonly record struct GemmLaunch(GemmChoice Choice, Type Epilogue, bool Fp16Output)
{
    public int M => Choice.M;
    public int N => Choice.N;
    public int K => Choice.K;
    public LinearWgmmaTma.Variant? Variant => Choice.Variant;
    public int Splits => Choice.Splits;
}

/// <summary>
/// How one fp16 GEMM shape (M x N x K) is launched on a tuned device: the TMA GEMM variant (null for a kernel set
/// without variants) and the split along K, with the device time it took and the untuned choice's, as measured. With
/// <see cref="HeadRows"/> (0: none) the first that many rows run unsplit and only the rest split (<see cref="SplitK.HeadRows"/>).
/// </summary>
public readonly record struct GemmChoice(int M, int N, int K, LinearWgmmaTma.Variant? Variant, int Splits, double Milliseconds,
    double DefaultMilliseconds, int HeadRows = 0);

/// <summary>
/// A table of tuned fp16 GEMM launches for one device and GEMM kernel (<c>smoothcache tune</c> writes it, timing each
/// candidate at the shapes a model's forward multiplies). <see cref="Linear"/> takes an entry's variant and split where
/// M, N and K match exactly (and its head rows); other shapes keep the built-in choice (<see cref="LinearWgmmaTma.Variant.Default"/>,
/// <see cref="SplitK.Choose(int, long, int, int)"/>). A backend reads the table SMOOTHCACHE_GEMM_TUNING
/// names, or else the one in the program's <c>tuning</c> folder measured on a device of its name
/// (<see cref="ForDevice"/>). Choices change only which kernel runs and how K is split: the sums' order, not what is summed.
/// </summary>
public sealed class GemmTuning
{
    /// <summary>The device it was measured on, as the driver names it ("NVIDIA H200").</summary>
    public string Device { get; }

    /// <summary>The fp16 GEMM kernel it was measured with (<see cref="Linear.Fp16Kernel"/>): it applies only there.</summary>
    public string Kernel { get; }

    public IReadOnlyList<GemmChoice> Gemms { get; }

    /// <summary>When and how it was measured (free text, for the reader).</summary>
    public string Measured { get; }

    /// <summary>One line for logs: how many shapes, for which kernel, measured when and how.</summary>
    public string Summary => $"{Gemms.Count} shapes for {Kernel} on {Device} ({Measured})";

    private readonly Dictionary<(int M, int N, int K), GemmChoice> _byShape;

    public GemmTuning(string device, string kernel, IEnumerable<GemmChoice> gemms, string measured = "")
    {
        Device = device;
        Kernel = kernel;
        Measured = measured;
        Gemms = gemms.ToArray();
        _byShape = new();
        foreach (var g in Gemms)
            if (!_byShape.TryAdd((g.M, g.N, g.K), g))
                throw new ArgumentException($"GEMM {g.M} x {g.N} x {g.K} is tuned twice");
    }

    /// <summary>The tuned launch of an M x N x K GEMM, or null where the table has none.</summary>
    public GemmChoice? Find(int m, int n, int k) => _byShape.TryGetValue((m, n, k), out var g) ? g : null;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The table as the JSON <see cref="Load"/> reads (written atomically by the caller: Model's AtomicFile).</summary>
    public string ToJson()
    {
        var gemms = new JsonArray();
        foreach (var g in Gemms)
            gemms.Add(new JsonObject
            {
                ["m"] = g.M, ["n"] = g.N, ["k"] = g.K, ["variant"] = g.Variant?.Name, ["splits"] = g.Splits,
                ["ms"] = Math.Round(g.Milliseconds, 5), ["defaultMs"] = Math.Round(g.DefaultMilliseconds, 5),
            });
        foreach (var (row, g) in gemms.Zip(Gemms))
            if (g.HeadRows > 0) row!["headRows"] = g.HeadRows;
        var root = new JsonObject { ["device"] = Device, ["kernel"] = Kernel, ["measured"] = Measured, ["gemms"] = gemms };
        return root.ToJsonString(Indented) + "\n";
    }

    /// <summary>Reads a table <see cref="ToJson"/> wrote; every fault is an <see cref="InvalidDataException"/> naming the
    /// file, the key and what was expected.</summary>
    public static GemmTuning Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: GEMM tuning file not found", path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>A table from its JSON; faults name <paramref name="path"/> (where the JSON came from).</summary>
    private static GemmTuning Parse(string json, string path)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: {JsonErrors.Describe(e)}");
        }
        if (root is not JsonObject table) throw new InvalidDataException($"{path}: expected a JSON object with device, kernel and gemms");
        string device = Text(table, "device", path), kernel = Text(table, "kernel", path);
        string measured = table["measured"] is JsonValue m && m.TryGetValue(out string? text) ? text : "";
        if (table["gemms"] is not JsonArray rows) throw new InvalidDataException($"{path}: gemms: expected an array of tuned GEMMs");
        var gemms = new List<GemmChoice>();
        for (int i = 0; i < rows.Count; i++)
        {
            string at = $"gemms[{i}]";
            if (rows[i] is not JsonObject row) throw new InvalidDataException($"{path}: {at}: expected an object with m, n, k, variant and splits");
            int splits = Count(row, "splits", at, path);
            if (splits > SplitK.MaxSplits) throw new InvalidDataException($"{path}: {at}.splits: expected 1 to {SplitK.MaxSplits}, got {splits}");
            LinearWgmmaTma.Variant? variant = null;
            if (row["variant"] is JsonValue v && v.TryGetValue(out string? name))
            {
                try
                {
                    variant = LinearWgmmaTma.Variant.Parse(name);
                }
                catch (ArgumentException e)
                {
                    throw new InvalidDataException($"{path}: {at}.variant: {e.Message}");
                }
            }
            else if (row["variant"] is not null) throw new InvalidDataException($"{path}: {at}.variant: expected a variant name or null");
            int rowCount = Count(row, "m", at, path), headRows = 0;
            if (row["headRows"] is not null)
            {
                headRows = Count(row, "headRows", at, path);
                if (headRows >= rowCount) throw new InvalidDataException($"{path}: {at}.headRows: expected fewer than m = {rowCount} rows, got {headRows}");
            }
            gemms.Add(new GemmChoice(rowCount, Count(row, "n", at, path), Count(row, "k", at, path), variant, splits,
                Milliseconds(row, "ms"), Milliseconds(row, "defaultMs"), headRows));
        }
        try
        {
            return new GemmTuning(device, kernel, gemms, measured);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: gemms: {e.Message}");
        }
    }

    /// <summary>The tables measured for this release (the repository's tuning/*.json), built into this assembly so that
    /// they travel with it, in a program or a package.</summary>
    public static IReadOnlyList<GemmTuning> BuiltIn => BuiltInTables.Value;

    private static readonly Lazy<GemmTuning[]> BuiltInTables = new(() =>
    {
        var assembly = typeof(GemmTuning).Assembly;
        return assembly.GetManifestResourceNames().Where(n => n.StartsWith("tuning/", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
            .Select(name =>
            {
                using var reader = new StreamReader(assembly.GetManifestResourceStream(name)!);
                return Parse(reader.ReadToEnd(), $"built-in {name}");
            }).ToArray();
    });

    /// <summary>The table measured on a device named <paramref name="deviceName"/>: the first in <paramref name="folder"/>
    /// (its *.json files, by name; tables tuned on the machine), else the built-in one (<see cref="BuiltIn"/>), else null.</summary>
    public static GemmTuning? ForDevice(string deviceName, string folder)
    {
        var fromFolder = Directory.Exists(folder) ? Directory.GetFiles(folder, "*.json").Order(StringComparer.Ordinal).Select(Load) : [];
        return fromFolder.Concat(BuiltIn).FirstOrDefault(t => string.Equals(t.Device, deviceName, StringComparison.Ordinal));
    }

    private static string Text(JsonObject o, string key, string path) =>
        o[key] is JsonValue v && v.TryGetValue(out string? s) && s.Length > 0 ? s
            : throw new InvalidDataException($"{path}: {key}: expected a non-empty string");

    private static int Count(JsonObject o, string key, string at, string path) =>
        o[key] is JsonValue v && v.TryGetValue(out int n) && n >= 1 ? n
            : throw new InvalidDataException($"{path}: {at}.{key}: expected a whole number of at least 1, got {o[key]?.ToJsonString() ?? "nothing"}");

    private static double Milliseconds(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out double ms) ? ms : double.NaN;
}
