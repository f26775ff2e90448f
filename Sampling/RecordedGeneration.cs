using System.Diagnostics;
using SmoothCache.Kernels;

namespace SmoothCache.Sampling;

/// <summary>
/// A generation recorded by <see cref="DiTPipeline.Record"/>: <see cref="Run"/> uploads the initial noise,
/// replays every recorded launch and reads the results back. Holds the device buffers the recording
/// reads and writes; dispose it to free them (disposing its pipeline disposes it too: the launches read the
/// pipeline's weights).
/// </summary>
public sealed class RecordedGeneration : IDisposable
{
    private readonly DiTPipeline _pipeline;
    private readonly LaunchRecording _recording;
    private readonly Tensor _latents;
    private readonly int[] _shape;
    private readonly float[] _defaultNoise;
    private int _disposed;

    internal RecordedGeneration(DiTPipeline pipeline, LaunchRecording recording, Tensor latents, int[] shape, float[] defaultNoise)
    {
        _pipeline = pipeline;
        _recording = recording;
        _latents = latents;
        _shape = shape;
        _defaultNoise = defaultNoise;
    }

    /// <summary>Launches one run replays (kernels and clears; on CUDA they are one graph launch).</summary>
    public int Launches => _recording.Launches;

    /// <summary>
    /// One generation from <paramref name="initialNoise"/> ([B, C, S, S] flattened; null: the noise of
    /// the recorded options). Elapsed covers the upload, the replay and the copies back.
    /// </summary>
    public GenerationResult Run(float[]? initialNoise = null)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (initialNoise is not null) DiTPipeline.CheckNoise(initialNoise, _shape, "initial noise", nameof(initialNoise));
        var noise = initialNoise ?? _defaultNoise;
        using var running = _pipeline.Enter("RecordedGeneration.Run");
        var timer = Stopwatch.StartNew();
        _latents.CopyFrom(noise);
        _recording.Replay();
        var images = _recording.Output;
        return new GenerationResult(_latents.ToArray(), (int[])_shape.Clone(), images.ToArray(), (int[])images.Shape.Clone(), timer.Elapsed);
    }

    /// <summary>Ends the recording: frees its launches (the CUDA graph) and buffers and returns its input tensor to the
    /// backend's arena; later <see cref="Run"/> calls throw <see cref="ObjectDisposedException"/>. A second call does nothing.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        using var claim = _pipeline.Backend.ClaimUnlessDisposed("RecordedGeneration.Dispose"); // after a Run on another thread
        _pipeline.Forget(this);
        _recording.Dispose();
        _latents.Dispose();
    }
}
