using ILGPU;
using ILGPU.Runtime;
using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model;

/// <summary>
/// Diffusion Transformer (diffusers' DiTTransformer2DModel), DESIGN §4:
///   tokens = PatchEmbed(x) + pos;  c = TimestepMLP(sinusoid(t)) + ClassTable[y]
///   for each block: x = DiTBlock(x, adaLN(SiLU(c)))
///   (shift, scale) = proj_out_1(SiLU(c));  y = proj_out_2(LN(x) * (1 + scale) + shift)
///   out = Unpatchify(y)
/// Every block stores its own copy of the embedders; when they are identical (as in converted
/// checkpoints) c is computed once and all blocks' adaLN projections plus the final one run as a
/// single GEMM whose output rows hold every block's six modulation vectors. A sampler, which knows its
/// timesteps, computes that GEMM for many steps at once (<see cref="PlanModulation"/>).
/// </summary>
public sealed class DiTTransformer : IHookable, IDisposable
{
    private const float FinalNormEps = 1e-6f;

    private readonly Backend _backend;
    private readonly Tensor _positions, _patchWeight, _patchBias, _projOutWeight, _projOutBias;
    private readonly Conditioning[] _conditioning;        // one, or one per block
    private readonly Tensor[] _adaLnWeights, _adaLnBiases; // matching _conditioning
    private readonly DiTBlock[] _blocks;
    private MemoryBuffer1D<int, Stride1D.Dense>? _labels;
    private int[] _uploadedLabels = [];
    /// <summary>Whether a launch recording reads <see cref="_labels"/>: then new labels go to a new buffer.</summary>
    private bool _labelsRecorded;
    private readonly List<MemoryBuffer1D<int, Stride1D.Dense>> _recordedLabels = new();
    private bool _disposed;

    /// <summary>The transformer's config.json settings (heads, width, layers, channels, patch and sample size, classes).</summary>
    public DiTConfig Config { get; }
    /// <summary>The blocks' arithmetic (Fp16: float16 GEMM weights and activations, float32 sums); fixed at construction.</summary>
    public Precision Precision { get; }
    /// <summary>Number of DiT blocks (the config's num_layers); the hook sees block indices 0 .. NumBlocks - 1.</summary>
    public int NumBlocks => _blocks.Length;
    /// <summary>The backend holding the weights and running every forward; the caller's, not disposed with the transformer.</summary>
    public Backend Backend => _backend;
    /// <summary>Runs each block's attention and MLP; null computes them directly.</summary>
    public IComponentHook? Hook { get; set; }
    /// <summary>True when the checkpoint's per-block embedders are identical and computed once.</summary>
    public bool SharedConditioning => _conditioning.Length == 1;
    /// <summary>Called with (block index, x) after each block; for tests and diagnostics.</summary>
    public Action<int, Tensor>? BlockOutputObserver { get; set; }

    /// <param name="precision">Fp16 stores the block and adaLN GEMM weights as float16, multiplies
    /// float16-rounded activations (tensor cores on CUDA, the portable GEMM on the CPU accelerator) and keeps
    /// the residual stream in float16; the conditioning and the final layer stay float32.</param>
    public DiTTransformer(Backend backend, DiTConfig config, IWeightSource weights, Precision precision = Precision.Fp32)
    {
        Precision = precision;
        _backend = backend;
        Config = config;
        using var claim = backend.ClaimWhenFree("loading a DiT"); // after another thread's work: the arena is not thread-safe
        // A checkpoint that fails part way (a tensor missing or misshapen) leaves none of its weights rented.
        using var loading = backend.Arena.TrackRents();
        int d = config.Width, p = config.PatchSize, layers = config.NumLayers;
        _positions = PositionTable.Run(backend, config.Grid, d);
        _patchWeight = WeightLoader.Load(backend, weights, "pos_embed.proj.weight", d, config.InChannels, p, p);
        _patchBias = WeightLoader.Load(backend, weights, "pos_embed.proj.bias", d);
        _projOutWeight = WeightLoader.Load(backend, weights, "proj_out_2.weight", p * p * config.OutChannels, d);
        _projOutBias = WeightLoader.Load(backend, weights, "proj_out_2.bias", p * p * config.OutChannels);
        _blocks = Enumerable.Range(0, layers).Select(i => new DiTBlock(i, config, weights, backend, precision)).ToArray();

        var hostEmbedders = Embedders(config, weights);
        _conditioning = hostEmbedders.Select(e => e.Upload(backend)).ToArray();
        // The adaLN projections: each block's six modulation vectors, then the final layer's shift and scale. Shared
        // conditioning stacks them into one GEMM whose rows hold them all, one after another.
        var adaLn = Enumerable.Range(0, layers + 1)
            .Select(i => i < layers ? (Prefix: $"transformer_blocks.{i}.norm1.linear.", Rows: 6 * d) : (Prefix: "proj_out_1.", Rows: 2 * d))
            .ToArray();
        if (SharedConditioning)
        {
            _adaLnWeights = [WeightLoader.ForLinear(WeightLoader.Stack(backend, weights, adaLn.Select(a => (a.Prefix + "weight", new[] { a.Rows, d })).ToArray()), precision)];
            _adaLnBiases = [WeightLoader.Stack(backend, weights, adaLn.Select(a => (a.Prefix + "bias", new[] { a.Rows })).ToArray())];
        }
        else
        {
            _adaLnWeights = adaLn.Select(a => WeightLoader.ForLinear(WeightLoader.Load(backend, weights, a.Prefix + "weight", a.Rows, d), precision)).ToArray();
            _adaLnBiases = adaLn.Select(a => WeightLoader.Load(backend, weights, a.Prefix + "bias", a.Rows)).ToArray();
        }
        loading.Keep();
    }

    /// <summary>The conditioning embedders (timestep MLP and class table) the forward runs: one where every block's hold the
    /// same weights (diffusers' DiT stores a copy per block), else one per block.</summary>
    private static HostEmbedder[] Embedders(DiTConfig config, IWeightSource weights)
    {
        var perBlock = Enumerable.Range(0, config.NumLayers).Select(i => HostEmbedder.Read(weights, config, i)).ToArray();
        return perBlock.All(e => e.SameAs(perBlock[0])) ? [perBlock[0]] : perBlock;
    }

    /// <summary>How many conditioning embedders a forward of this checkpoint runs (see <see cref="ForwardMacsOf"/>), read
    /// from its weights without loading the model.</summary>
    public static int EmbedderCount(DiTConfig config, IWeightSource weights) => Embedders(config, weights).Length;

    /// <summary>Throws where <paramref name="weights"/> hold another number of blocks than the config's num_layers (more would
    /// be left out silently; fewer would fail on the first missing tensor, without saying why).</summary>
    public static void CheckStoredBlocks(DiTConfig config, string configPath, IWeightSource weights)
    {
        long stored = weights.Names.Select(StoredBlock).DefaultIfEmpty(-1).Max() + 1L;
        if (stored != config.NumLayers)
            throw new ModelConfigException(configPath, "num_layers", stored == 0
                ? $"{config.NumLayers}, but {weights.Location} holds no transformer_blocks"
                : $"{config.NumLayers}, but {weights.Location} holds {stored} block{(stored == 1 ? "" : "s")} (transformer_blocks.0{(stored == 1 ? "" : $"..{stored - 1}")})");
    }

    /// <summary>The block a tensor name "transformer_blocks.{i}.…" belongs to, else -1.</summary>
    private static int StoredBlock(string name)
    {
        const string prefix = "transformer_blocks.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return -1;
        int dot = name.IndexOf('.', prefix.Length);
        return dot > prefix.Length && int.TryParse(name.AsSpan(prefix.Length, dot - prefix.Length), out int block) ? block : -1;
    }

    /// <summary>Loads a diffusers transformer folder (config.json + weights).</summary>
    public static DiTTransformer Load(Backend backend, string folder, Precision precision = Precision.Fp32)
    {
        string configPath = Path.Combine(folder, "config.json");
        var config = DiTConfig.Load(configPath);
        using var weights = WeightSources.OpenModelFolder(folder);
        CheckStoredBlocks(config, configPath, weights);
        return new DiTTransformer(backend, config, weights, precision);
    }

    /// <summary>
    /// One forward pass. latents [B, C_in, S, S]; one timestep and one class label per sample
    /// (label NumClasses is the null class). Returns [B, C_out, S, S], owned by the caller.
    /// </summary>
    public Tensor Forward(Tensor latents, float[] timesteps, int[] labels)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(latents);
        ArgumentNullException.ThrowIfNull(timesteps);
        ArgumentNullException.ThrowIfNull(labels);
        int b = CheckLatents(latents);
        if (timesteps.Length != b || labels.Length != b)
            throw new ArgumentException($"need one timestep and one label per sample: batch {b}, {timesteps.Length} timesteps, {labels.Length} labels");
        CheckLabels(labels);
        var labelView = UploadLabels(labels);
        using var sinusoid = TimestepEmbedding.Run(_backend, timesteps);
        return Forward(latents, projection => Modulation(projection, sinusoid, labelView));
    }

    /// <summary>One forward pass at step <paramref name="step"/> of a sampling run whose modulation
    /// <paramref name="plan"/> computes ahead (<see cref="PlanModulation"/>); the same result as the forward
    /// with that step's timestep and the plan's labels. Step 0 starts a run: the <see cref="Hook"/> is reset first
    /// (<see cref="IComponentHook.Reset"/>: a cache helper's steps count from 0 again, with no outputs of an earlier run
    /// to reuse), so a sampling loop of one's own follows a cache schedule from its start, as Generate does.</summary>
    public Tensor Forward(Tensor latents, PlannedModulation plan, int step)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(latents);
        ArgumentNullException.ThrowIfNull(plan);
        int b = CheckLatents(latents);
        if (plan.Transformer != this) throw new ArgumentException("the modulation plan belongs to another transformer", nameof(plan));
        if (plan.Batch != b) throw new ArgumentException($"latents {latents.ShapeText} are not the plan's batch of {plan.Batch}", nameof(latents));
        plan.CheckStep(step);
        if (step == 0) Hook?.Reset();
        return Forward(latents, projection => plan.Step(projection, step));
    }

    /// <summary>The largest batch a forward takes: the kernels index activations in 32 bits, and the widest of them, the MLP's
    /// hidden layer [B, T, 4 D] (or the portable attention's scores [B, heads, T, T]), must stay below 2^31 elements.</summary>
    public int MaxBatch => (int)(int.MaxValue / Math.Max((long)Config.Tokens * 4 * Config.Width, (long)Config.NumHeads * Config.Tokens * Config.Tokens));

    /// <summary>The adaLN modulation of every step of a sampling run at these labels (one timestep a step,
    /// shared by the batch), computed a chunk of steps at a time by <see cref="Forward(Tensor, PlannedModulation, int)"/>.</summary>
    public PlannedModulation PlanModulation(float[] stepTimesteps, int[] labels, long maxElements = PlannedModulation.DefaultMaxElements)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(stepTimesteps);
        ArgumentNullException.ThrowIfNull(labels);
        if (stepTimesteps.Length == 0) throw new ArgumentException("no timesteps given: one a step", nameof(stepTimesteps));
        if (labels.Length == 0) throw new ArgumentException("no labels given: one a sample", nameof(labels));
        CheckLabels(labels);
        return new PlannedModulation(this, (float[])stepTimesteps.Clone(), (int[])labels.Clone(), maxElements);
    }

    /// <summary>The forward pass on modulation rows from <paramref name="modulation"/>: the [B, width] tensor of
    /// an adaLN projection (index into <see cref="_adaLnWeights"/>), owned by the caller.</summary>
    private Tensor Forward(Tensor latents, Func<int, Tensor> modulation)
    {
        var c = Config;
        int d = c.Width;
        using var x = PatchEmbed.Run(latents, _patchWeight, _patchBias, _positions, HalfConversion.ActivationType(Precision));
        // Shared conditioning: one projection's rows hold every block's modulation and then the final layer's.
        using var shared = SharedConditioning ? modulation(0) : null;
        PendingResidual? pending = null;
        try
        {
            for (int i = 0; i < _blocks.Length; i++)
            {
                using var mod = shared?.Share() ?? modulation(i);
                pending = RunBlock(i, x, mod, shared is null ? 0 : i * 6 * d, pending);
            }
            using var finalMod = shared?.Share() ?? modulation(_blocks.Length);
            int final = shared is null ? 0 : _blocks.Length * 6 * d;
            using var h = PendingResidual.AddThenNormalize(pending, x, finalMod, final, final + d, FinalNormEps, DType.Float32);
            using var y = Linear.Run(h, _projOutWeight, _projOutBias);
            return Unpatchify.Run(y, c.PatchSize, c.OutChannels);
        }
        finally
        {
            pending?.Dispose();
        }
    }

    /// <summary>The batch of latents [B, C_in, S, S] of this model, or an ArgumentException.</summary>
    private int CheckLatents(Tensor latents)
    {
        var c = Config;
        if (latents.Shape.Length != 4 || latents.Dim(1) != c.InChannels || latents.Dim(2) != c.SampleSize || latents.Dim(3) != c.SampleSize)
            throw new ArgumentException($"latents {latents.ShapeText} are not [B,{c.InChannels},{c.SampleSize},{c.SampleSize}]");
        if (latents.Dim(0) > MaxBatch)
            throw new ArgumentOutOfRangeException(nameof(latents), $"a batch of {latents.Dim(0)} is more than the {MaxBatch} a forward of this model takes " +
                                                  "(its activations are indexed in 32 bits)");
        return latents.Dim(0);
    }

    private void CheckLabels(int[] labels)
    {
        foreach (int y in labels)
            if (y < 0 || y > Config.NumClasses)
                throw new ArgumentOutOfRangeException(nameof(labels), $"class label {y} is outside [0, {Config.NumClasses}] ({Config.NumClasses} = null class)");
    }

    /// <summary>Runs block i after the previous block's pending residual; returns its own pending residual, or null once
    /// added to x: the next adaLN can add it only where it reads the same modulation tensor (shared conditioning), and an
    /// observer sees each whole block.</summary>
    private PendingResidual? RunBlock(int i, Tensor x, Tensor mod, int offset, PendingResidual? previous)
    {
        var pending = _blocks[i].Forward(x, mod, offset, Hook, previous);
        previous?.Dispose();
        if (SharedConditioning && BlockOutputObserver is null) return pending;
        using (pending) pending.AddTo(x);
        BlockOutputObserver?.Invoke(i, x);
        return null;
    }

    /// <summary>adaLN projection <paramref name="projection"/> of SiLU(c), c from the timestep sinusoids and labels
    /// (rows cycling through the labels). Projection i &lt; NumBlocks is block i's (all blocks' at once when the
    /// conditioning is shared); the final layer's is conditioned on block 0's embedder, as in the reference.</summary>
    internal Tensor Modulation(int projection, Tensor sinusoid, ArrayView<int> labels)
    {
        var embedder = _conditioning[projection < _conditioning.Length ? projection : 0];
        using var silu = embedder.RunSilu(sinusoid, labels);
        return Linear.Run(silu, _adaLnWeights[projection], _adaLnBiases[projection]);
    }

    /// <summary>How many adaLN projections <see cref="Modulation"/> takes, and the width of each one's rows.</summary>
    internal int[] ModulationWidths => _adaLnWeights.Select(w => w.Dim(0)).ToArray();

    /// <summary>The labels on the device; uploaded only when they change (a sampling loop uses the
    /// same labels every step, and an upload would make the host wait for the device). A buffer that a
    /// launch recording reads is never overwritten: its replays must see the labels it was recorded with.</summary>
    internal ArrayView<int> UploadLabels(int[] labels)
    {
        if (_labels is null || !labels.AsSpan().SequenceEqual(_uploadedLabels))
        {
            if (_labels is not null && (_labelsRecorded || _labels.Length != labels.Length))
            {
                if (_labelsRecorded) _recordedLabels.Add(_labels);
                else _labels.Dispose();
                _labels = null;
                _labelsRecorded = false;
            }
            _labels ??= _backend.Accelerator.Allocate1D<int>(labels.Length);
            _backend.Upload(_labels.View, labels);
            _uploadedLabels = (int[])labels.Clone();
        }
        _labelsRecorded |= _backend.IsRecording;
        return _labels.View;
    }

    /// <summary>Multiply-adds of one forward at batch b (what the cache statistics compare against).</summary>
    public long ForwardMacs(int b) => ForwardMacsOf(Config, b, _conditioning.Length);

    /// <summary>Multiply-adds of one forward at batch b of a model with this config, without loading it; its timestep MLP
    /// runs once per conditioning embedder (<see cref="EmbedderCount"/>: 1 unless the blocks' differ).</summary>
    public static long ForwardMacsOf(DiTConfig c, int b, int embedders = 1)
    {
        long d = c.Width, tokens = c.Tokens;
        long perBlock = DiTBlock.AttentionMacs(c, b) + DiTBlock.FeedForwardMacs(c, b);
        long embed = b * tokens * d * c.InChannels * c.PatchSize * c.PatchSize;
        long cond = b * (embedders * (TimestepEmbedding.Channels * d + d * d) + (c.NumLayers * 6 + 2) * d * d);
        long head = b * tokens * d * c.PatchSize * c.PatchSize * c.OutChannels;
        return embed + cond + c.NumLayers * perBlock + head;
    }

    /// <summary>Returns every weight tensor (blocks, embedders, adaLN and final layer) to the backend's arena, which keeps them
    /// for reuse until its ReleaseFree, and frees the label buffers. The backend and the hook stay the caller's.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in new[] { _positions, _patchWeight, _patchBias, _projOutWeight, _projOutBias }.Concat(_adaLnWeights).Concat(_adaLnBiases))
            t.Dispose();
        foreach (var e in _conditioning) e.Dispose();
        foreach (var blk in _blocks) blk.Dispose();
        _labels?.Dispose();
        foreach (var buffer in _recordedLabels) buffer.Dispose();
    }

    /// <summary>Timestep MLP (256 -> D, SiLU, D -> D) plus the class table: c = t_emb + y_emb.</summary>
    private sealed class Conditioning(Tensor w1, Tensor b1, Tensor w2, Tensor b2, Tensor table) : IDisposable
    {
        /// <summary>SiLU(c), as every adaLN projection reads c; the SiLU is the class lookup's epilogue.</summary>
        public Tensor RunSilu(Tensor sinusoid, ArrayView<int> labels)
        {
            using var hidden = Linear.Run<SiluEpilogue>(sinusoid, w1, b1);
            using var temb = Linear.Run(hidden, w2, b2);
            return ClassEmbedding.Run<SiluEpilogue>(labels, table, temb);
        }

        public void Dispose()
        {
            foreach (var t in new[] { w1, b1, w2, b2, table }) t.Dispose();
        }
    }

    /// <summary>One block's embedder weights on the host, to compare blocks before uploading.</summary>
    private sealed record HostEmbedder(DiTConfig Config, float[] W1, float[] B1, float[] W2, float[] B2, float[] Table)
    {
        public static HostEmbedder Read(IWeightSource w, DiTConfig c, int block)
        {
            string p = $"transformer_blocks.{block}.norm1.emb.";
            int d = c.Width;
            return new HostEmbedder(c,
                w.ReadFloat32(p + "timestep_embedder.linear_1.weight", d, TimestepEmbedding.Channels),
                w.ReadFloat32(p + "timestep_embedder.linear_1.bias", d),
                w.ReadFloat32(p + "timestep_embedder.linear_2.weight", d, d),
                w.ReadFloat32(p + "timestep_embedder.linear_2.bias", d),
                w.ReadFloat32(p + "class_embedder.embedding_table.weight", c.NumClasses + 1, d));
        }

        public bool SameAs(HostEmbedder o) =>
            W1.AsSpan().SequenceEqual(o.W1) && B1.AsSpan().SequenceEqual(o.B1) && W2.AsSpan().SequenceEqual(o.W2)
            && B2.AsSpan().SequenceEqual(o.B2) && Table.AsSpan().SequenceEqual(o.Table);

        public Conditioning Upload(Backend b)
        {
            int d = Config.Width;
            return new Conditioning(b.Arena.Upload(W1, d, TimestepEmbedding.Channels), b.Arena.Upload(B1, d),
                b.Arena.Upload(W2, d, d), b.Arena.Upload(B2, d), b.Arena.Upload(Table, Config.NumClasses + 1, d));
        }
    }
}
