using SmoothCache.Kernels;

namespace SmoothCache.Model;

/// <summary>
/// The adaLN modulation of every step of a sampling run, for <see cref="DiTTransformer.Forward(Tensor, PlannedModulation, int)"/>.
/// A step's modulation depends only on its timestep and the labels, so a sampler, which knows its timesteps, computes
/// it ahead: the conditioning GEMM of a chunk of steps at once, steps x B rows, instead of B rows every step. That GEMM
/// reads every block's adaLN weights however few its rows (DiT-XL/2: 226M values), so at one step's 16 rows it is bound
/// by memory (0.21 ms on an H200, 50 times in a DDIM-50 job); a chunk reads them once for all its steps.
/// A chunk holds as many steps as fit in the plan's element budget (<see cref="DefaultMaxElements"/>: 256 MB of
/// float32), and is computed when a step in it is first asked for; the chunk before it is freed then.
/// </summary>
public sealed class PlannedModulation : IDisposable
{
    /// <summary>64M values: 21 steps of DiT-XL/2 at batch 16 (16 x 195,840 values a step).</summary>
    public const long DefaultMaxElements = 64L << 20;

    private readonly float[] _timesteps;
    private readonly int[] _labels;
    private Tensor[] _chunk = [];
    private int _chunkStart, _chunkSteps;
    private bool _disposed;

    /// <summary>The transformer the plan was made for (its forwards alone take it).</summary>
    public DiTTransformer Transformer { get; }
    /// <summary>Samples a step (the labels' count).</summary>
    public int Batch => _labels.Length;
    /// <summary>Steps planned: one timestep each.</summary>
    public int Steps => _timesteps.Length;
    /// <summary>Steps whose modulation one conditioning GEMM computes.</summary>
    public int StepsPerChunk { get; }

    internal PlannedModulation(DiTTransformer transformer, float[] timesteps, int[] labels, long maxElements)
    {
        if (maxElements < 1) throw new ArgumentOutOfRangeException(nameof(maxElements), $"the element budget must be positive, got {maxElements}");
        Transformer = transformer;
        _timesteps = timesteps;
        _labels = labels;
        long perStep = labels.Length * (long)transformer.ModulationWidths.Sum();
        StepsPerChunk = (int)Math.Clamp(maxElements / perStep, 1, timesteps.Length);
    }

    /// <summary>Refuses a disposed plan or a step outside it.</summary>
    internal void CheckStep(int step)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (step < 0 || step >= Steps)
            throw new ArgumentOutOfRangeException(nameof(step), $"step {step} is outside the plan's {Steps} steps");
    }

    /// <summary>Adaptive-norm projection <paramref name="projection"/>'s rows at <paramref name="step"/>:
    /// [B, width], a view into its chunk, owned by the caller.</summary>
    internal Tensor Step(int projection, int step)
    {
        CheckStep(step);
        if (_chunk.Length == 0 || step < _chunkStart || step >= _chunkStart + _chunkSteps)
            Compute(step / StepsPerChunk * StepsPerChunk);
        return _chunk[projection].Rows((step - _chunkStart) * Batch, Batch);
    }

    /// <summary>The chunk of steps from <paramref name="first"/>: row s B + b of each projection is sample b at
    /// step first + s. The sinusoids take a launch a step (the timestep in its arguments, so nothing is uploaded
    /// and a launch recording can hold it); everything after is one launch each for all the chunk's rows.</summary>
    private void Compute(int first)
    {
        FreeChunk();
        int steps = Math.Min(StepsPerChunk, Steps - first), b = Batch;
        var labels = Transformer.UploadLabels(_labels);
        using var sinusoid = Transformer.Backend.Arena.Rent(steps * b, TimestepEmbedding.Channels);
        for (int s = 0; s < steps; s++)
            using (var rows = sinusoid.Rows(s * b, b))
                TimestepEmbedding.Fill(rows, _timesteps[first + s]);
        var chunk = new List<Tensor>();
        try
        {
            for (int p = 0; p < Transformer.ModulationWidths.Length; p++) chunk.Add(Transformer.Modulation(p, sinusoid, labels));
        }
        catch
        {
            foreach (var t in chunk) t.Dispose();
            throw;
        }
        _chunk = chunk.ToArray();
        _chunkStart = first;
        _chunkSteps = steps;
    }

    private void FreeChunk()
    {
        foreach (var t in _chunk) t.Dispose();
        _chunk = [];
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        FreeChunk();
    }
}
