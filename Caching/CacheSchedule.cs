using System.Globalization;
using System.Text;
using System.Text.Json;
using SmoothCache.Kernels;
using SmoothCache.Model;

namespace SmoothCache.Caching;

/// <summary>
/// A SmoothCache schedule (DESIGN §3): key -> one flag per step, true (1) = compute, false (0) = reuse
/// the output of the last computed step. Keys are a component ("attn1", "ff", aliases "attn", "mlp")
/// or a component of one block ("attn-5"). The file format is the seed's: a JSON object of 0/1 lists.
/// </summary>
public sealed class CacheSchedule
{
    private readonly List<KeyValuePair<string, bool[]>> _entries;
    // Canonical key ("attn1" or "attn1-5") -> flags, so aliases resolve in one lookup.
    private readonly Dictionary<string, bool[]> _byCanonicalKey = new();

    /// <summary>Where the schedule came from (file path or a description); named in every error.</summary>
    public string SourceName { get; }

    /// <summary>The keys as written, in file order.</summary>
    public IReadOnlyList<string> Keys => _entries.Select(e => e.Key).ToList();

    /// <summary>The flags of a key, as written or by another name of its component ("attn-5" finds "attn1-5"; aliases
    /// as in the file format). Throws <see cref="KeyNotFoundException"/> where the schedule has no such key.</summary>
    public IReadOnlyList<bool> this[string key] =>
        (Canonical(key) is { } canonical ? _byCanonicalKey.GetValueOrDefault(canonical) : null)
        ?? throw new KeyNotFoundException($"{SourceName}: no key \"{key}\"");

    /// <summary>The canonical form of a key, or null where it is not one.</summary>
    private static string? Canonical(string key) =>
        KeyError(key, out var component, out var block) is null ? CanonicalKey(component, block) : null;

    /// <summary>The canonical components ("attn1", "ff") that some key mentions, in first-seen order.</summary>
    public IReadOnlyList<string> Components =>
        ComponentNames.CanonicalSet(_entries.Select(e => ParseKey(e.Key, SourceName).Component));

    /// <summary>A schedule of these keys and flags (true = compute), kept in the given order and copied;
    /// <paramref name="sourceName"/> names it in errors.</summary>
    /// <exception cref="CacheScheduleException">no entries, a key that is not "component" or "component-block" of a known
    /// component, or two keys naming the same one (attn = attn1, mlp = ff)</exception>
    public CacheSchedule(IEnumerable<KeyValuePair<string, IReadOnlyList<bool>>> entries, string sourceName = "schedule")
    {
        SourceName = sourceName;
        _entries = new List<KeyValuePair<string, bool[]>>();
        var writtenAs = new Dictionary<string, string>();
        foreach (var (key, flags) in entries)
        {
            var (component, block) = ParseKey(key, sourceName);
            var canonical = CanonicalKey(component, block);
            if (writtenAs.TryGetValue(canonical, out var earlier))
                throw new CacheScheduleException(sourceName, key, earlier == key
                    ? "appears twice"
                    : $"names the same component as key \"{earlier}\" (attn = attn1, mlp = ff)");
            writtenAs[canonical] = key;
            var copy = flags.ToArray();
            _entries.Add(new(key, copy));
            _byCanonicalKey[canonical] = copy;
        }
        if (_entries.Count == 0)
            throw new CacheScheduleException(sourceName, null,
                $"names no component: expected keys {ComponentNames.Expected} (or <component>-<block>), each a list of 0/1");
    }

    /// <summary>Reads a schedule JSON file (see <see cref="Parse"/>); errors name <paramref name="path"/>.</summary>
    /// <exception cref="CacheScheduleException">the path is a folder or cannot be read, or its JSON is not a valid schedule</exception>
    public static CacheSchedule Load(string path)
    {
        string json;
        if (Directory.Exists(path)) throw new CacheScheduleException(path, null, "is a folder: expected a schedule JSON file");
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CacheScheduleException(path, null, $"cannot read the schedule: {e.Message}", e);
        }
        return Parse(json, path);
    }

    /// <summary>A schedule from JSON text: an object of key -> list of 0/1 (true/false also accepted); lists of any length.
    /// <paramref name="sourceName"/> names it in errors.</summary>
    /// <exception cref="CacheScheduleException">the text is not JSON or not an object, has no keys, a key is unknown or repeated
    /// (aliases included), or a value is not a list of 0/1</exception>
    public static CacheSchedule Parse(string json, string sourceName)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new CacheScheduleException(sourceName, null, JsonErrors.Describe(e), e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CacheScheduleException(sourceName, null,
                    $"expected a JSON object mapping component keys to lists of 0/1, found {Describe(root.ValueKind)}");
            // What CalibrationHelper.WriteErrorsJson writes (calibrate --errors): errors to scan, not a schedule yet.
            if (root.TryGetProperty("avg_error_rows", out _))
                throw new CacheScheduleException(sourceName, "avg_error_rows",
                    "this is a calibration's errors file, not a schedule: scan it into one with a threshold " +
                    "(smoothcache calibrate --from-errors FILE --threshold A --out schedule.json)");
            var entries = new List<KeyValuePair<string, IReadOnlyList<bool>>>();
            foreach (var property in root.EnumerateObject())
                entries.Add(new(property.Name, ParseFlags(property.Value, property.Name, sourceName)));
            return new CacheSchedule(entries, sourceName);
        }
    }

    private static bool[] ParseFlags(JsonElement value, string key, string sourceName)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw new CacheScheduleException(sourceName, key, $"expected a list of 0/1, found {Describe(value.ValueKind)}");
        var flags = new bool[value.GetArrayLength()];
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            flags[i] = item.ValueKind switch
            {
                JsonValueKind.Number when item.GetRawText() == "0" => false,
                JsonValueKind.Number when item.GetRawText() == "1" => true,
                JsonValueKind.False => false,
                JsonValueKind.True => true,
                _ => throw new CacheScheduleException(sourceName, key,
                    $"index {i}: expected 0 or 1, found {Truncate(item.GetRawText())}"),
            };
            i++;
        }
        return flags;
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private static string Truncate(string text) => text.Length <= 40 ? text : text[..40] + "...";

    /// <summary>Splits "attn-5" into ("attn", 5) and "ff" into ("ff", null); rejects anything else.</summary>
    private static (string Component, int? Block) ParseKey(string key, string sourceName) =>
        KeyError(key, out var component, out var block) is { } error
            ? throw new CacheScheduleException(sourceName, key, error)
            : (component, block);

    /// <summary>Why a key is not "component" or "component-block", or null (with its parts) where it is one.</summary>
    private static string? KeyError(string key, out string component, out int? block)
    {
        var dash = key.IndexOf('-');
        component = dash < 0 ? key : key[..dash];
        block = null;
        if (ComponentNames.CanonicalOrNull(component) is null)
            return $"unknown component key: expected {ComponentNames.Expected}, optionally followed by -<block>";
        if (dash < 0) return null;
        var digits = key[(dash + 1)..];
        // The reference builds keys as f"{name}-{block}": only plain decimal numbers can ever match.
        bool canonicalNumber = digits.Length > 0 && digits.All(char.IsAsciiDigit) && (digits == "0" || digits[0] != '0');
        if (!canonicalNumber || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            return $"block index \"{digits}\" is not a non-negative integer without leading zeros";
        block = index;
        return null;
    }

    private static string CanonicalKey(string component, int? block)
    {
        var canonical = ComponentNames.Canonical(component);
        return block is null ? canonical : $"{canonical}-{block}";
    }

    /// <summary>The flags that apply to (component, block): key "c-b" if present, else "c", else null (DESIGN §3).</summary>
    private IReadOnlyList<bool>? Lookup(string component, int block)
    {
        var canonical = ComponentNames.Canonical(component);
        if (_byCanonicalKey.TryGetValue($"{canonical}-{block}", out var perBlock)) return perBlock;
        return _byCanonicalKey.GetValueOrDefault(canonical);
    }

    /// <summary>False only where the schedule says 0 for this step; no key or a step beyond the list computes.</summary>
    public bool ShouldCompute(string component, int block, int step)
    {
        var flags = Lookup(component, block);
        return flags is null || step < 0 || step >= flags.Count || flags[step];
    }

    /// <summary>
    /// Checks the schedule against a model of <paramref name="numBlocks"/> blocks run for
    /// <paramref name="steps"/> steps. A key naming a block the model lacks is an error; lists shorter
    /// than the steps are allowed (the remaining steps compute) and come back as warnings, as do lists longer
    /// than the steps (one warning for the schedule: most likely it was calibrated for another step count).
    /// </summary>
    public IReadOnlyList<string> Validate(int numBlocks, int steps)
    {
        CheckBlocks(numBlocks);
        var warnings = new List<string>();
        foreach (var (key, flags) in _entries)
        {
            if (flags.Length < steps)
                warnings.Add($"{SourceName}: key \"{key}\": {flags.Length} entries for {steps} steps; " +
                             $"steps {flags.Length}..{steps - 1} are computed");
            if (flags.Length > 0 && !flags[0])
                warnings.Add($"{SourceName}: key \"{key}\" starts with 0, but step 0 is computed: there is no earlier output to reuse");
        }
        // Longer lists are most likely a schedule calibrated for another step count: the same index is another timestep.
        int longest = _entries.Select(e => e.Value.Length).DefaultIfEmpty(0).Max();
        if (longest > steps)
            warnings.Add($"{SourceName}: lists of up to {longest} entries for {steps} steps: entries {steps}..{longest - 1} are unused, " +
                         $"and a schedule calibrated for {longest} steps skips at other timesteps than a {steps}-step run has");
        return warnings;
    }

    /// <summary>Throws where a key names a block a model of <paramref name="numBlocks"/> blocks lacks (its own key would
    /// never match, and the schedule was surely made for another model).</summary>
    public void CheckBlocks(int numBlocks)
    {
        foreach (var (key, _) in _entries)
            if (ParseKey(key, SourceName).Block is { } block && block >= numBlocks)
                throw new CacheScheduleException(SourceName, key,
                    $"block {block} does not exist: the model has {numBlocks} blocks (0..{numBlocks - 1})");
    }

    /// <summary>
    /// The fraction of component calls the cache helper computes over <paramref name="steps"/> steps
    /// for the given components in every block: a step computes when the schedule says so, and the
    /// first step always computes (there is no cached output to reuse yet).
    /// </summary>
    public double ComputedFraction(IEnumerable<string> components, int numBlocks, int steps)
    {
        var selected = ComponentNames.CanonicalSet(components);
        long computed = 0, total = 0;
        foreach (var component in selected)
            for (int block = 0; block < numBlocks; block++)
                for (int step = 0; step < steps; step++)
                {
                    total++;
                    if (step == 0 || ShouldCompute(component, block, step)) computed++;
                }
        return total == 0 ? 1.0 : (double)computed / total;
    }

    /// <summary>The seed's compact layout: one line per key, e.g. {"attn1": [1, 0, 1],\n "ff": [1, 1]}.</summary>
    public string ToJson()
    {
        var sb = new StringBuilder("{");
        for (int i = 0; i < _entries.Count; i++)
        {
            if (i > 0) sb.Append(",\n ");
            var (key, flags) = _entries[i];
            sb.Append(JsonSerializer.Serialize(key)).Append(": [");
            sb.AppendJoin(", ", flags.Select(f => f ? '1' : '0'));
            sb.Append(']');
        }
        return sb.Append("}\n").ToString();
    }

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/> atomically (a temporary file, then a rename), creating
    /// missing folders.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

    /// <summary>The schedule as <see cref="ToJson"/> writes it.</summary>
    public override string ToString() => ToJson();
}
