using System.Text.Json;
using System.Text.Json.Nodes;

namespace SmoothCache.Model.Checkpoints;

/// <summary>
/// Random weights in the exact tensor layout of a diffusers DiT transformer (DiT-XL/2-256 by
/// default), generated on demand: the real checkpoints cannot be downloaded here, so benchmarks and
/// layout tests run on these. Values are uniform in [-s, s] (s = sqrt(3) * 0.02, std 0.02), a
/// deterministic function of (seed, tensor name, index). All blocks share one embedder copy, as in
/// converted checkpoints.
/// </summary>
public sealed class SyntheticWeights : IWeightSource
{
    private readonly Dictionary<string, int[]> _shapes;
    private readonly int _seed;

    public DiTConfig Config { get; }
    /// <inheritdoc/>
    public string Location => $"(synthetic DiT, {Config.NumLayers} layers, width {Config.Width}, seed {_seed})";
    /// <inheritdoc/>
    public IReadOnlyCollection<string> Names => _shapes.Keys;

    /// <summary>DiT-XL/2 at 256x256 (latent 32x32): 28 layers, 16 heads x 72, learned sigma.</summary>
    public static DiTConfig XL2_256 { get; } = new();

    public SyntheticWeights(DiTConfig config, int seed = 0)
    {
        Config = config;
        _seed = seed;
        _shapes = Layout(config).ToDictionary(e => e.Name, e => e.Shape);
    }

    /// <summary>Every tensor of a diffusers DiT transformer checkpoint, in state-dict order.</summary>
    public static IEnumerable<(string Name, int[] Shape)> Layout(DiTConfig c)
    {
        int d = c.Width, p = c.PatchSize;
        yield return ("pos_embed.proj.weight", [d, c.InChannels, p, p]);
        yield return ("pos_embed.proj.bias", [d]);
        for (int i = 0; i < c.NumLayers; i++)
        {
            string b = $"transformer_blocks.{i}.";
            yield return (b + "norm1.emb.timestep_embedder.linear_1.weight", [d, 256]);
            yield return (b + "norm1.emb.timestep_embedder.linear_1.bias", [d]);
            yield return (b + "norm1.emb.timestep_embedder.linear_2.weight", [d, d]);
            yield return (b + "norm1.emb.timestep_embedder.linear_2.bias", [d]);
            yield return (b + "norm1.emb.class_embedder.embedding_table.weight", [c.NumClasses + 1, d]);
            yield return (b + "norm1.linear.weight", [6 * d, d]);
            yield return (b + "norm1.linear.bias", [6 * d]);
            foreach (var proj in new[] { "to_q", "to_k", "to_v", "to_out.0" })
            {
                yield return ($"{b}attn1.{proj}.weight", [d, d]);
                yield return ($"{b}attn1.{proj}.bias", [d]);
            }
            yield return (b + "ff.net.0.proj.weight", [4 * d, d]);
            yield return (b + "ff.net.0.proj.bias", [4 * d]);
            yield return (b + "ff.net.2.weight", [d, 4 * d]);
            yield return (b + "ff.net.2.bias", [d]);
        }
        yield return ("proj_out_1.weight", [2 * d, d]);
        yield return ("proj_out_1.bias", [2 * d]);
        yield return ("proj_out_2.weight", [p * p * c.OutChannels, d]);
        yield return ("proj_out_2.bias", [p * p * c.OutChannels]);
    }

    /// <inheritdoc/>
    public bool Contains(string name) => _shapes.ContainsKey(name);

    /// <inheritdoc/>
    public TensorEntry Describe(string name) =>
        _shapes.TryGetValue(name, out var shape) ? new TensorEntry(name, "F32", shape) : throw new MissingTensorException(Location, name);

    /// <inheritdoc/>
    public float[] ReadFloat32(string name, params int[] expectedShape)
    {
        var shape = Describe(name).Shape;
        if (expectedShape.Length > 0 && !expectedShape.SequenceEqual(shape))
            throw new TensorShapeException(Location, name, expectedShape, shape);
        // Embedders are shared: every block's copy is generated from block 0's name.
        string key = System.Text.RegularExpressions.Regex.Replace(name, @"^transformer_blocks\.\d+\.norm1\.emb\.", "transformer_blocks.0.norm1.emb.");
        ulong seed = (ulong)(uint)_seed * 0x9E3779B97F4A7C15UL ^ Fnv1a(key);
        var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
        // One LCG stream per tensor; chunks start from the stream jumped ahead, so the values do not
        // depend on how the work is split (DiT-XL/2's 675M values take seconds instead of ~15 s).
        long chunks = (values.Length + ChunkLength - 1) / ChunkLength;
        Parallel.For(0L, chunks, chunk =>
        {
            long start = chunk * ChunkLength, end = Math.Min(values.Length, start + ChunkLength);
            ulong state = Skip(seed, start);
            for (long i = start; i < end; i++)
            {
                state = unchecked(state * Multiplier + Increment);
                values[i] = ((state >> 40) / (float)(1 << 24) * 2f - 1f) * Scale;
            }
        });
        return values;
    }

    private const ulong Multiplier = 6364136223846793005UL, Increment = 1442695040888963407UL;
    private const float Scale = 0.034641016f; // sqrt(3) * 0.02: uniform with standard deviation 0.02
    private const long ChunkLength = 1 << 20;

    /// <summary>The LCG state n steps after <paramref name="state"/> (composing x -> a x + c by squaring).</summary>
    internal static ulong Skip(ulong state, long n)
    {
        ulong mul = 1, add = 0, stepMul = Multiplier, stepAdd = Increment;
        unchecked
        {
            for (ulong k = (ulong)n; k > 0; k >>= 1)
            {
                if ((k & 1) != 0)
                {
                    mul *= stepMul;
                    add = add * stepMul + stepAdd;
                }
                stepAdd = (stepMul + 1) * stepAdd;
                stepMul *= stepMul;
            }
            return mul * state + add;
        }
    }

    private static ulong Fnv1a(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char ch in s) h = unchecked((h ^ ch) * 1099511628211UL);
        return h;
    }

    /// <summary>
    /// Writes a diffusers pipeline folder (model_index.json, transformer/config.json + weights,
    /// scheduler/scheduler_config.json with DiT's DDIM settings) holding these weights, as
    /// .safetensors or as a PyTorch .bin, in float32 or float16.
    /// </summary>
    public void WriteFolder(string folder, SaveDType dtype, bool pytorchBin)
    {
        var c = Config;
        string transformer = Path.Combine(folder, "transformer"), scheduler = Path.Combine(folder, "scheduler");
        Directory.CreateDirectory(transformer);
        Directory.CreateDirectory(scheduler);
        var tensors = Names.Select(n => (n, _shapes[n], ReadFloat32(n)));
        if (pytorchBin) PyTorchBinWriter.Write(Path.Combine(transformer, "diffusion_pytorch_model.bin"), tensors, dtype);
        else SafetensorsWriter.Write(Path.Combine(transformer, "diffusion_pytorch_model.safetensors"), tensors, dtype);
        var options = new JsonSerializerOptions { WriteIndented = true };
        var config = new JsonObject
        {
            ["_class_name"] = "DiTTransformer2DModel", ["activation_fn"] = "gelu-approximate", ["attention_bias"] = true,
            ["attention_head_dim"] = c.HeadDim, ["in_channels"] = c.InChannels, ["norm_type"] = "ada_norm_zero",
            ["num_attention_heads"] = c.NumHeads, ["num_embeds_ada_norm"] = c.NumClasses, ["num_layers"] = c.NumLayers,
            ["out_channels"] = c.OutChannels, ["patch_size"] = c.PatchSize, ["sample_size"] = c.SampleSize,
            ["norm_eps"] = c.NormEps, ["norm_elementwise_affine"] = false,
        };
        AtomicFile.WriteAllText(Path.Combine(transformer, "config.json"), config.ToJsonString(options));
        var index = new JsonObject
        {
            ["_class_name"] = "DiTPipeline", ["transformer"] = new JsonArray("diffusers", "DiTTransformer2DModel"),
            ["scheduler"] = new JsonArray("diffusers", "DDIMScheduler"),
        };
        AtomicFile.WriteAllText(Path.Combine(folder, "model_index.json"), index.ToJsonString(options));
        var ddim = new JsonObject
        {
            ["_class_name"] = "DDIMScheduler", ["beta_start"] = 0.0001, ["beta_end"] = 0.02, ["beta_schedule"] = "linear",
            ["num_train_timesteps"] = 1000, ["clip_sample"] = false, ["set_alpha_to_one"] = true, ["steps_offset"] = 0,
            ["prediction_type"] = "epsilon", ["timestep_spacing"] = "leading",
        };
        AtomicFile.WriteAllText(Path.Combine(scheduler, "scheduler_config.json"), ddim.ToJsonString(options));
    }

    /// <inheritdoc/>
    public void Dispose() { }
}
