namespace SmoothCache.Kernels;

/// <summary>
/// Launches recorded once by <see cref="Backend.Record"/> and replayed as a whole. On CUDA the recording is
/// a CUDA graph: one launch from the host replays every kernel, so a run no longer waits on the host's
/// per-kernel launch cost. On the CPU accelerator it is the list of launches, replayed in order (what
/// the tests check the recording rules with). The recording owns the arena its body rented from (which
/// takes the backend's free buffers before allocating) and the body's result (<see cref="Output"/>,
/// defined after a replay).
/// </summary>
public sealed class LaunchRecording : IDisposable
{
    private readonly Backend _backend;
    private readonly List<Action> _launches = new();
    private CudaGraph? _graph;
    private Tensor? _output;
    private bool _disposed;

    internal TensorArena Arena { get; }

    internal LaunchRecording(Backend backend)
    {
        _backend = backend;
        Arena = new TensorArena(backend, donor: backend.Arena);
    }

    /// <summary>Kernel launches and clears recorded.</summary>
    public int Launches { get; private set; }

    /// <summary>On CUDA, the kernels this recording launches while the kernel before them runs
    /// (<see cref="Backend.DependentLaunches"/>); 0 elsewhere.</summary>
    public int DependentLaunches => _graph?.DependentLaunches ?? 0;

    /// <summary>The tensor the recorded body returned; a replay rewrites it. Owned by the recording.</summary>
    public Tensor Output
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _output!;
        }
    }

    /// <summary>While recording: on CUDA the launch runs into the stream's capture, elsewhere it is kept.</summary>
    internal void Add(Action launch)
    {
        Launches++;
        if (_backend.IsCuda) launch();
        else _launches.Add(launch);
    }

    internal void Finish(Tensor output, CudaGraph? graph)
    {
        _output = output;
        _graph = graph;
        if (graph is not null && graph.Nodes != Launches)
            throw new InvalidOperationException(
                $"the CUDA graph holds {graph.Nodes} nodes but {Launches} launches were recorded: some work went to another stream");
    }

    /// <summary>Queues every recorded launch again, in order, on the backend's stream.</summary>
    public void Replay()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_backend.IsRecording) throw new InvalidOperationException("cannot replay a recording inside another recording");
        if (_graph is not null)
        {
            _graph.Launch(_backend.Stream);
            return;
        }
        foreach (var launch in _launches) launch();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _output?.Dispose();
        _graph?.Dispose();
        try
        {
            // Replays may still be queued: their buffers go only after the device is done with them.
            if (!_backend.IsRecording) _backend.Accelerator.Synchronize();
            Arena.Dispose();
        }
        catch (Exception) when (_backend.IsCuda)
        {
            // After a device fault CUDA refuses every call; the fault itself reaches the caller from the
            // call that met it, and this teardown error would only replace it.
        }
        _launches.Clear();
    }
}
