using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class LaunchRecordingTests
{
    [Fact]
    public void RecordingRunsNothingAndEachReplayReadsTheCurrentInputs()
    {
        var backend = Cpu;
        using var x = backend.Arena.Upload(Random(1, 300, 3f), 300);
        Elementwise.Run<SiluEpilogue>(x).Dispose(); // compiled before recording
        using var cleared = backend.Arena.Upload(Enumerable.Repeat(1f, 50).ToArray(), 50);
        long launchesBefore = backend.LaunchCount;

        using var recording = backend.Record(() =>
        {
            backend.Clear(cleared.View);
            return Elementwise.Run<SiluEpilogue>(x);
        });

        Assert.Equal(2, recording.Launches);
        Assert.Equal(launchesBefore, backend.LaunchCount);
        Assert.All(cleared.ToArray(), v => Assert.Equal(1f, v));
        foreach (int seed in new[] { 2, 3 })
        {
            var input = Random(seed, 300, 3f);
            x.CopyFrom(input);
            recording.Replay();
            Assert.All(cleared.ToArray(), v => Assert.Equal(0f, v));
            Assert.True(RelativeL2(recording.Output.ToArray(), input.Select(v => LinearTests.Silu(v)).ToArray()) < 1e-6);
        }
    }

    [Fact]
    public void AskingForDependentLaunchesWithoutGpuSupportRecordsAsBefore()
    {
        var backend = Cpu;
        using var x = backend.Arena.Upload(Random(5, 100, 3f), 100);
        Elementwise.Run<SiluEpilogue>(x).Dispose();
        backend.DependentLaunches = true;
        try
        {
            using var recording = backend.Record(() => Elementwise.Run<SiluEpilogue>(x));
            recording.Replay();
            Assert.Equal(0, recording.DependentLaunches);
            Assert.True(RelativeL2(recording.Output.ToArray(), x.ToArray().Select(v => LinearTests.Silu(v)).ToArray()) < 1e-6);
        }
        finally
        {
            backend.DependentLaunches = false;
        }
    }

    [Fact]
    public void TheBodyRentsFromTheRecordingsOwnArena()
    {
        var backend = Cpu;
        var main = backend.Arena;
        using var x = main.Upload(Random(4, 64), 64);
        Elementwise.Run<SiluEpilogue>(x).Dispose();
        TensorArena? inside = null;
        using (var recording = backend.Record(() =>
        {
            inside = backend.Arena;
            return Elementwise.Run<SiluEpilogue>(x);
        }))
        {
            Assert.NotSame(main, inside);
            Assert.True(inside!.AllocatedBytes >= 64 * sizeof(float));
        }
        Assert.Same(main, backend.Arena);
        Assert.False(backend.IsRecording);
    }

    [Fact]
    public void ARecordingTakesOverTheBuffersTheFirstRunLeftFree()
    {
        var backend = Cpu;
        var main = backend.Arena;
        using var x = main.Upload(Random(6, 777), 777);
        Elementwise.Run<SiluEpilogue>(x).Dispose(); // leaves one free 777-float buffer
        long before = main.AllocatedBytes;
        TensorArena? inside = null;
        using var recording = backend.Record(() =>
        {
            inside = backend.Arena;
            return Elementwise.Run<SiluEpilogue>(x);
        });
        // Moved, not allocated again: the two arenas together hold what the main one held.
        Assert.Equal(777 * sizeof(float), inside!.AllocatedBytes);
        Assert.Equal(before - 777 * sizeof(float), main.AllocatedBytes);
    }

    [Fact]
    public void UploadsWaitsFirstUsesAndNestingAreRefusedWithReasons()
    {
        using var backend = Backend.Create(DeviceKind.Cpu);
        using var x = backend.Arena.Upload(Random(5, 32), 32);

        var firstUse = Assert.Throws<InvalidOperationException>(() => backend.Record(() => Elementwise.Run<SiluEpilogue>(x)));
        Assert.Contains("first time inside a recording", firstUse.Message);
        Assert.False(backend.IsRecording);

        Elementwise.Run<SiluEpilogue>(x).Dispose();
        var upload = Assert.Throws<InvalidOperationException>(() => backend.Record(() => backend.Arena.Upload(new float[4], 4)));
        Assert.Contains("host-to-device copy", upload.Message);
        var wait = Assert.Throws<InvalidOperationException>(() => backend.Record(() =>
        {
            var y = Elementwise.Run<SiluEpilogue>(x);
            y.ToArray();
            return y;
        }));
        Assert.Contains("waiting for the device", wait.Message);
        var nested = Assert.Throws<InvalidOperationException>(() => backend.Record(() => backend.Record(() => x.Share()).Output));
        Assert.Contains("do not nest", nested.Message);

        // After the refusals the backend works as before.
        using var y = Elementwise.Run<SiluEpilogue>(x);
        Assert.Equal(32, y.ToArray().Length);
        Assert.False(backend.IsRecording);
    }
}
