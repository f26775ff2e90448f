using System.Text.Json;
using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;
using System.Text.RegularExpressions;

namespace SmoothCache.Sampling;

/// <summary>A scheduler configuration that cannot be used; the message names the file (<see cref="CheckpointException.File"/>:
/// the path, or a description of where the settings came from) and the key. A <see cref="CheckpointException"/>, as
/// every other fault of a model folder that <see cref="DiTPipeline.Load"/> reports.</summary>
public sealed class SchedulerConfigException(string source, string problem, Exception? inner = null)
    : CheckpointException(source, null, problem, inner);

/// <summary>
/// The settings of a diffusers <c>scheduler/scheduler_config.json</c> that the schedulers here use.
/// Keys missing from the file take the defaults of the diffusers class named by <c>_class_name</c>.
/// Only the variants DiT uses are supported (linear betas, epsilon prediction, no clipping or
/// thresholding); anything else is rejected when the file is read, naming the file and the key.
/// </summary>
public sealed record SchedulerConfig
{
    /// <summary>_class_name of diffusers' DDIM scheduler (DiT's, and the default).</summary>
    public const string DdimClass = "DDIMScheduler";
    /// <summary>_class_name of diffusers' DPM-Solver++ multistep scheduler.</summary>
    public const string DpmSolverClass = "DPMSolverMultistepScheduler";
    /// <summary>_class_name of diffusers' DDPM scheduler.</summary>
    public const string DdpmClass = "DDPMScheduler";

    /// <summary>Where the settings came from (a path, or a description), for error messages.</summary>
    public string Source { get; init; } = "(built-in)";
    /// <summary>The diffusers class (_class_name): <see cref="DdimClass"/>, <see cref="DpmSolverClass"/> or <see cref="DdpmClass"/>;
    /// it picks the defaults of missing keys and the pipeline's default scheduler.</summary>
    public string ClassName { get; init; } = DdimClass;
    /// <summary>Training timesteps T (num_train_timesteps), at least 2; sampling timesteps lie in [0, T).</summary>
    public int NumTrainTimesteps { get; init; } = 1000;
    /// <summary>beta at timestep 0 (beta_start), in (0, BetaEnd).</summary>
    public double BetaStart { get; init; } = 0.0001;
    /// <summary>beta at timestep T - 1 (beta_end), in (BetaStart, 1).</summary>
    public double BetaEnd { get; init; } = 0.02;
    /// <summary>beta_schedule; only "linear" is accepted.</summary>
    public string BetaSchedule { get; init; } = "linear";
    /// <summary>What the model predicts (prediction_type); only "epsilon" (the noise) is accepted.</summary>
    public string PredictionType { get; init; } = "epsilon";
    /// <summary>"leading", "linspace" or "trailing".</summary>
    public string TimestepSpacing { get; init; } = "leading";
    /// <summary>Added to every "leading" timestep (steps_offset), at least 0; ignored by the other spacings.</summary>
    public int StepsOffset { get; init; }
    /// <summary>DDIM: the alpha-bar "before" timestep 0 is 1 (else alphas_cumprod[0]).</summary>
    public bool SetAlphaToOne { get; init; } = true;
    /// <summary>DDPM: "fixed_small", "fixed_small_log" or "fixed_large".</summary>
    public string VarianceType { get; init; } = "fixed_small";
    /// <summary>DPM-Solver: below this log-SNR the schedule is cut off (-inf: never).</summary>
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;

    /// <summary>DiT's scheduler: DDIM with linear betas 1e-4..0.02 over 1000 steps, "leading" spacing.</summary>
    public static SchedulerConfig DitDefault { get; } = new();

    /// <summary>Reads and validates a diffusers scheduler_config.json.</summary>
    public static SchedulerConfig Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SchedulerConfigException(path, $"cannot read scheduler config: {e.Message}", e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses and validates the JSON text of a scheduler config; <paramref name="source"/> names it in errors.</summary>
    public static SchedulerConfig Parse(string json, string source)
    {
        // Python's json writes infinities as bare Infinity / -Infinity (e.g. lambda_min_clipped), which
        // is not JSON: quote them so the reader accepts them as named numbers.
        json = Regex.Replace(json, @"(?<=[:\[,]\s*)(-?Infinity|NaN)(?=\s*[,\]}])", "\"$1\"");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new SchedulerConfigException(source, JsonErrors.Describe(e), e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new SchedulerConfigException(source, "expected a JSON object at the top level");
            return FromJson(new Reader(doc.RootElement, source));
        }
    }

    private static SchedulerConfig FromJson(Reader r)
    {
        string cls = r.String("_class_name", null)
            ?? throw new SchedulerConfigException(r.Source, $"missing key '_class_name' (expected {DdimClass}, {DpmSolverClass} or {DdpmClass})");
        if (cls is not (DdimClass or DpmSolverClass or DdpmClass))
            throw new SchedulerConfigException(r.Source, $"key '_class_name' is '{cls}'; supported: {DdimClass}, {DpmSolverClass}, {DdpmClass}");

        // Defaults that differ between the diffusers classes.
        bool isDpm = cls == DpmSolverClass;
        var config = new SchedulerConfig
        {
            Source = r.Source,
            ClassName = cls,
            NumTrainTimesteps = r.Int("num_train_timesteps", 1000),
            BetaStart = r.Double("beta_start", 0.0001),
            BetaEnd = r.Double("beta_end", 0.02),
            BetaSchedule = r.String("beta_schedule", "linear")!,
            PredictionType = r.String("prediction_type", "epsilon")!,
            TimestepSpacing = r.String("timestep_spacing", isDpm ? "linspace" : "leading")!,
            StepsOffset = r.Int("steps_offset", 0),
            SetAlphaToOne = r.Bool("set_alpha_to_one", true),
            VarianceType = r.String("variance_type", "fixed_small") ?? "fixed_small",
            LambdaMinClipped = r.Double("lambda_min_clipped", double.NegativeInfinity),
        };

        r.Require(config.NumTrainTimesteps is >= 2 and <= 1_000_000, "num_train_timesteps", config.NumTrainTimesteps, "an integer from 2 to 1000000");
        r.Require(config.BetaStart > 0 && config.BetaEnd > config.BetaStart && config.BetaEnd < 1,
            "beta_end", config.BetaEnd, $"0 < beta_start ({config.BetaStart}) < beta_end < 1");
        r.Require(config.BetaSchedule == "linear", "beta_schedule", config.BetaSchedule, "'linear' (the only schedule supported)");
        r.Require(config.PredictionType == "epsilon", "prediction_type", config.PredictionType, "'epsilon' (the only prediction type supported)");
        r.Require(config.TimestepSpacing is "leading" or "linspace" or "trailing",
            "timestep_spacing", config.TimestepSpacing, "'leading', 'linspace' or 'trailing'");
        r.Require(config.StepsOffset >= 0 && config.StepsOffset < config.NumTrainTimesteps, "steps_offset", config.StepsOffset,
            "an integer >= 0 and below num_train_timesteps");
        // clip_sample defaults to true in DDIM and DDPM; DiT's config turns it off.
        // null is None in diffusers: no clipping.
        if (r.IsMissing("clip_sample"))
            r.Require(isDpm, "clip_sample", "missing", $"false (without it {cls} clips samples, diffusers' default; clipping is not supported)");
        else
            r.Require(!r.Bool("clip_sample", false), "clip_sample", true, "false (sample clipping is not supported)");
        r.Require(!r.Bool("thresholding", false), "thresholding", true, "false (dynamic thresholding is not supported)");
        r.Require(!r.Bool("rescale_betas_zero_snr", false), "rescale_betas_zero_snr", true, "false (not supported)");
        r.Require(r.IsNullOrMissing("trained_betas"), "trained_betas", "a list", "null (explicit betas are not supported)");

        if (cls == DdpmClass)
            r.Require(config.VarianceType is "fixed_small" or "fixed_small_log" or "fixed_large",
                "variance_type", config.VarianceType, "'fixed_small', 'fixed_small_log' or 'fixed_large'");
        if (isDpm)
        {
            r.Require(r.Int("solver_order", 2) == 2, "solver_order", r.Int("solver_order", 2), "2");
            r.Require(r.String("algorithm_type", "dpmsolver++") == "dpmsolver++", "algorithm_type", r.String("algorithm_type", "dpmsolver++"), "'dpmsolver++'");
            r.Require(r.String("solver_type", "midpoint") == "midpoint", "solver_type", r.String("solver_type", "midpoint"), "'midpoint'");
            r.Require(r.String("final_sigmas_type", "zero") == "zero", "final_sigmas_type", r.String("final_sigmas_type", "zero"), "'zero'");
            r.Require(config.TimestepSpacing == "linspace", "timestep_spacing", config.TimestepSpacing, "'linspace' for DPM-Solver++");
            foreach (var key in new[] { "use_karras_sigmas", "use_lu_lambdas", "use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas" })
                r.Require(!r.Bool(key, false), key, true, "false (only the training sigmas are supported)");
        }
        return config;
    }

    /// <summary>
    /// The configuration DPM-Solver++ runs with. A DPM-Solver config is used as it is; from a DDIM or
    /// DDPM config the solver is derived as DiT's pipeline does it: same betas, DPM-Solver++ 2M
    /// midpoint, lower order at the final step, final sigma 0, "linspace" timesteps.
    /// </summary>
    public SchedulerConfig ForDpmSolver() =>
        ClassName == DpmSolverClass ? this : this with { ClassName = DpmSolverClass, TimestepSpacing = "linspace" };

    /// <summary>Typed access to the keys of one JSON object, with errors that name the file and key.</summary>
    private readonly struct Reader(JsonElement root, string source)
    {
        public string Source => source;

        private JsonElement? Get(string key) =>
            root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        public bool IsNullOrMissing(string key) => Get(key) is null;

        public bool IsMissing(string key) => !root.TryGetProperty(key, out _);

        public string? String(string key, string? fallback)
        {
            if (Get(key) is not { } v) return fallback;
            if (v.ValueKind != JsonValueKind.String) throw Bad(key, v, "a string");
            return v.GetString();
        }

        public int Int(string key, int fallback)
        {
            if (Get(key) is not { } v) return fallback;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n)) throw Bad(key, v, "an integer");
            return n;
        }

        public double Double(string key, double fallback)
        {
            if (Get(key) is not { } v) return fallback;
            if (v.ValueKind == JsonValueKind.Number) return v.GetDouble();
            if (v.ValueKind == JsonValueKind.String)
            {
                switch (v.GetString())
                {
                    case "Infinity": return double.PositiveInfinity;
                    case "-Infinity": return double.NegativeInfinity;
                }
            }
            throw Bad(key, v, "a number");
        }

        public bool Bool(string key, bool fallback)
        {
            if (Get(key) is not { } v) return fallback;
            if (v.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw Bad(key, v, "true or false");
            return v.GetBoolean();
        }

        public void Require(bool ok, string key, object? actual, string expected)
        {
            if (!ok) throw new SchedulerConfigException(source, $"key '{key}' is {Show(actual)}; expected {expected}");
        }

        private SchedulerConfigException Bad(string key, JsonElement v, string expected) =>
            new(source, $"key '{key}' is {v.GetRawText()}; expected {expected}");

        private static string Show(object? value) => value switch
        {
            string s => $"'{s}'",
            bool b => b ? "true" : "false",
            null => "null",
            _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "?",
        };
    }
}
