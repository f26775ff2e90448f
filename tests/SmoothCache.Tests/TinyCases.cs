using System.Text.Json;
using SmoothCache.Caching;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests;

/// <summary>
/// The two SmoothCache reference cases of tests/fixtures/tiny, run once per test session on the CPU
/// backend like the reference did: an uncached run from initial_noise with calibration recording
/// the errors (calibration computes everything, so it is also the uncached run), then a cached run
/// with the case's schedule.
/// </summary>
public sealed class TinyCase
{
    private static readonly Dictionary<string, TinyCase> Cache = new();
    private static DiTPipeline? _pipeline;

    public string Name { get; }
    public JsonElement Json { get; }
    public SafetensorsFile Reference { get; }
    public List<float[]> PerStepLatents { get; } = new();
    public float[] FinalUncached { get; private set; } = [];
    public float[] FinalCached { get; private set; } = [];
    public IReadOnlyDictionary<string, double[][]> AveragedRows { get; private set; } = new Dictionary<string, double[][]>();
    public CalibrationHelper Calibration { get; private set; } = null!;
    public CacheStats CachedStats { get; private set; } = null!;

    public static DiTPipeline Pipeline => _pipeline ??= DiTPipeline.Load(RepoFile("models", "dit-digits"), Cpu);

    public static TinyCase Get(string name)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(name, out var run)) Cache[name] = run = new TinyCase(name);
            return run;
        }
    }

    private TinyCase(string name)
    {
        Name = name;
        Json = JsonDocument.Parse(File.ReadAllText(Fixture("tiny", name + ".json"))).RootElement;
        Reference = SafetensorsFile.Open(Fixture("tiny", name + ".safetensors"));
        var options = Options();
        var components = Json.GetProperty("components").EnumerateArray().Select(c => c.GetString()!).ToArray();

        using (var calibration = CalibrationHelper.Enable(Pipeline.Transformer, Json.GetProperty("lookahead").GetInt32(), components))
        {
            FinalUncached = Pipeline.Generate(options, step => PerStepLatents.Add(step.Latents.ToArray())).Latents;
            AveragedRows = calibration.AveragedRows();
            Calibration = calibration;
        }
        var schedule = CacheSchedule.Parse(Json.GetProperty("schedule").GetRawText(), name + ".json schedule");
        using var cache = SmoothCacheHelper.Enable(Pipeline.Transformer, schedule);
        FinalCached = Pipeline.Generate(options).Latents;
        CachedStats = cache.Stats();
    }

    public GenerationOptions Options() => new()
    {
        Labels = Json.GetProperty("labels").EnumerateArray().Select(l => l.GetInt32()).ToArray(),
        Steps = Json.GetProperty("steps").GetInt32(),
        Scheduler = Json.GetProperty("scheduler").GetString(),
        GuidanceScale = Json.GetProperty("guidance_scale").GetSingle(),
        InitialNoise = Reference.ReadFloat32("initial_noise"),
    };
}
