using SmoothCache.Kernels;
using SmoothCache.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Sampling;

public class DiTPipelineTests
{
    [Theory]
    [InlineData("tiny_ddim50_attn_ff")]
    [InlineData("tiny_dpm20_attn")]
    public void UncachedSamplingFollowsTheReferenceStepByStep(string name)
    {
        var run = TinyCase.Get(name);
        int steps = run.Json.GetProperty("steps").GetInt32();
        var perStep = run.Reference.ReadFloat32("per_step_latents");
        int size = perStep.Length / steps;
        Assert.Equal(steps, run.PerStepLatents.Count);
        for (int s = 0; s < steps; s++)
        {
            double error = RelativeL2(run.PerStepLatents[s], perStep.AsSpan(s * size, size).ToArray());
            Assert.True(error < 1e-4, $"step {s}: relative error {error:E2}");
        }
        double final = RelativeL2(run.FinalUncached, run.Reference.ReadFloat32("final_uncached"));
        Assert.True(final < 1e-4, $"final: relative error {final:E2}");
    }

    [Fact]
    public void SeededNoiseIsReproducibleAndDiffersBySeed()
    {
        var a = GaussianNoise.Sample(5, 0, 1000);
        Assert.Equal(a, GaussianNoise.Sample(5, 0, 1000));
        Assert.NotEqual(a, GaussianNoise.Sample(6, 0, 1000));
        Assert.Equal(a[..10], GaussianNoise.Sample(5, 0, 10)); // element i does not depend on the count
        // Nearby seeds are not shifted copies of one another (seed k + 2 once was seed k moved along by one element).
        for (int k = 0; k < 16; k++)
            for (int d = 1; d <= 2; d++)
            {
                float[] first = GaussianNoise.Sample(k, 0, 104), other = GaussianNoise.Sample(k + d, 0, 104);
                for (int shift = 0; shift <= 4; shift++)
                    Assert.True(Enumerable.Range(0, 100).Count(j => other[j] == first[j + shift]) < 3, $"seed {k + d} is seed {k} moved by {shift}");
            }
        double mean = a.Average(v => (double)v), var = a.Average(v => (double)v * v) - mean * mean;
        Assert.InRange(mean, -0.1, 0.1);
        Assert.InRange(var, 0.9, 1.1);
    }

    [Fact]
    public void ACancelledGenerationStopsAtTheNextStepAndReturnsItsBuffers()
    {
        var pipe = TinyCase.Pipeline;
        var options = new GenerationOptions { Labels = [1, 2], Steps = 6, Seed = 4 };
        var whole = pipe.Generate(options);
        long held = pipe.Backend.Arena.AllocatedBytes;

        using var cancel = new CancellationTokenSource();
        var seen = new List<int>();
        var hook = pipe.Transformer.Hook;
        Assert.ThrowsAny<OperationCanceledException>(() => pipe.Generate(options, step =>
        {
            seen.Add(step.Index);
            if (step.Index == 1) cancel.Cancel();
        }, cancel.Token));
        Assert.Equal([0, 1], seen);
        Assert.Same(hook, pipe.Transformer.Hook);

        // Every buffer came back: the same generation again needs no new memory and gives the same latents.
        Assert.Equal(whole.Latents, pipe.Generate(options).Latents);
        Assert.Equal(held, pipe.Backend.Arena.AllocatedBytes);
        Assert.ThrowsAny<OperationCanceledException>(() => pipe.Generate(options, cancellation: cancel.Token));
    }

    [Fact]
    public void BadOptionsAreRejectedBeforeAnyWork()
    {
        var pipe = TinyCase.Pipeline;
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.Generate(new GenerationOptions { Labels = [1], Steps = 0 }));
        var steps = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.Generate(new GenerationOptions { Labels = [1], Steps = 1001 }));
        Assert.Equal("options", steps.ParamName);
        Assert.Contains("num_train_timesteps (1000)", steps.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.Generate(new GenerationOptions { Labels = [1], GuidanceScale = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.Generate(new GenerationOptions { Labels = [1001] }));
        Assert.Throws<ArgumentException>(() => pipe.Generate(new GenerationOptions { Labels = [1], InitialNoise = new float[3] }));
        Assert.Throws<ArgumentException>(() => pipe.ParseLabels("3,eleven"));
        Assert.Equal([3, 7], pipe.ParseLabels("3, 7"));
        Assert.Throws<ArgumentNullException>(() => pipe.Generate(null!));
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => pipe.Generate(new GenerationOptions { Labels = null! })).ParamName);
        Assert.Throws<ArgumentNullException>(() => DiTPipeline.Load(RepoFile("models", "dit-digits"), null!));
    }

    /// <summary>The null class as a label (diffusers' 1000) draws an unconditional image: under guidance its conditional and
    /// unconditional halves agree, so the guidance scale changes nothing.</summary>
    [Fact]
    public void TheNullClassDrawsAnUnconditionalImage()
    {
        var pipe = TinyCase.Pipeline;
        int nullClass = pipe.Transformer.Config.NullClass;
        Assert.Equal([3, nullClass], pipe.ParseLabels($"3,{nullClass}"));
        var options = new GenerationOptions { Labels = [nullClass], Steps = 3, Seed = 2 };
        var unguided = pipe.Generate(options with { GuidanceScale = 1 }).Latents;
        Assert.True(RelativeL2(pipe.Generate(options with { GuidanceScale = 4 }).Latents, unguided) < 1e-5);
        Assert.True(RelativeL2(pipe.Generate(options with { Labels = [3], GuidanceScale = 1 }).Latents, unguided) > 1e-2);
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.Generate(options with { Labels = [nullClass + 1] }));
    }

    [Fact]
    public void MoreImagesThanTheKernelsIndexAreRefused()
    {
        // dit-digits: 64 tokens x 4 x 64 wide MLP rows = 16,384 elements a sample (and as many attention scores):
        // 131,071 samples a forward, half as many images under guidance.
        var pipe = TinyCase.Pipeline;
        Assert.Equal(131071, pipe.Transformer.MaxBatch);
        Assert.Equal(65535, pipe.MaxImages(guided: true));
        Assert.Equal(131071, pipe.MaxImages(guided: false));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.Generate(new GenerationOptions { Labels = new int[65536] }));
        Assert.Contains("65536 Labels are more images than one generation of this model takes (65535 under guidance", e.Message);
    }

    [Fact]
    public void AGenerationFromAnotherThreadWhileOneRunsIsRefusedAndAfterItRuns()
    {
        var pipe = TinyCase.Pipeline;
        var options = new GenerationOptions { Labels = [4], Steps = 2, Seed = 9 };
        var expected = pipe.Generate(options);
        GenerationResult? result = null;
        Exception? thrown = null;
        pipe.Generate(options, step => { if (step.Index == 0) thrown = ThrownOnAnotherThread(() => result = pipe.Generate(options)); });
        Assert.Contains("DiTPipeline.Generate: the backend", Assert.IsType<InvalidOperationException>(thrown).Message);
        Assert.Null(result);
        Assert.Null(ThrownOnAnotherThread(() => result = pipe.Generate(options)));
        Assert.Equal(expected.Latents, result!.Latents);
    }

    /// <summary>Generate from its own onStep callback on the same thread (the backend's claims nest there): refused, since the
    /// two would share the transformer's cache helper (the outer images came out wrong, or a shape error came from the kernels).</summary>
    [Fact]
    public void AGenerationStartedFromItsOwnCallbackIsRefused()
    {
        var pipe = TinyCase.Pipeline;
        var options = new GenerationOptions { Labels = [3, 7], Steps = 4, Seed = 5 };
        var schedule = SmoothCache.Caching.CacheSchedule.Parse("{\"attn1\": [1, 0, 1, 1], \"ff\": [1, 1, 0, 1]}", "test schedule");
        using var cache = SmoothCache.Caching.SmoothCacheHelper.Enable(pipe.Transformer, schedule);
        var expected = pipe.Generate(options);
        Exception? inner = null;
        var outer = pipe.Generate(options, step =>
        {
            if (step.Index == 1) inner = Record.Exception(() => pipe.Generate(options with { Labels = [1] }));
        });
        Assert.Contains("DiTPipeline.Generate: this pipeline is already running a generation", Assert.IsType<InvalidOperationException>(inner).Message);
        Assert.Equal(expected.Latents, outer.Latents);
        Assert.Equal(expected.Latents, pipe.Generate(options).Latents);
    }

    [Fact]
    public void DisposingThePipelineEndsItsRecordingsAndFreesItsMemory()
    {
        using var backend = Backend.Create(DeviceKind.Cpu);
        var pipe = DiTPipeline.Load(RepoFile("models", "dit-digits"), backend);
        var options = new GenerationOptions { Labels = [1], Steps = 2, Seed = 3 };
        var recorded = pipe.Record(options);
        recorded.Run();
        Assert.True(backend.Arena.AllocatedBytes > 0);
        pipe.Dispose();
        Assert.Equal(0, backend.Arena.AllocatedBytes);
        // A replay would read the weights' freed buffers: refused, as is the pipeline itself.
        Assert.Throws<ObjectDisposedException>(() => recorded.Run());
        Assert.Contains("DiTPipeline", Assert.Throws<ObjectDisposedException>(() => pipe.Generate(options)).ObjectName);
        Assert.Contains("DiTTransformer", Assert.Throws<ObjectDisposedException>(() => pipe.Transformer.Forward(
            backend.Arena.Zeros(pipe.LatentShape(1)), [1f], [1])).ObjectName);
        pipe.Dispose();
        recorded.Dispose();
        backend.Dispose();
        // A disposed backend says so, whatever reaches it first, and holds nothing.
        Assert.Equal(0, backend.Arena.AllocatedBytes);
        Assert.EndsWith("Backend", Assert.Throws<ObjectDisposedException>(() => DiTPipeline.Load(RepoFile("models", "dit-digits"), backend)).ObjectName);
        Assert.EndsWith("Backend", Assert.Throws<ObjectDisposedException>(() => backend.Claim("work")).ObjectName);
        backend.Dispose();
    }

    /// <summary>A host shutting down while a request generates: disposing the pipeline or its backend from another thread
    /// stops the generation at its next step and frees nothing before it has stopped (freeing under its kernels took the
    /// process down).</summary>
    [Theory]
    [InlineData("pipeline", "DiTPipeline")]
    [InlineData("backend", "Backend")]
    public void DisposingFromAnotherThreadStopsTheGenerationAtItsNextStep(string disposed, string objectName)
    {
        var backend = Backend.Create(DeviceKind.Cpu);
        var pipe = DiTPipeline.Load(RepoFile("models", "dit-digits"), backend);
        WorkerThread? disposer = null;
        int lastStep = -1;
        var stopped = Assert.Throws<ObjectDisposedException>(() => pipe.Generate(new GenerationOptions { Labels = [2], Steps = 6 }, step =>
        {
            lastStep = step.Index;
            if (step.Index > 0) return;
            disposer = new WorkerThread(disposed == "pipeline" ? pipe.Dispose : backend.Dispose);
            disposer.UntilBlocked(); // waiting for this generation's claim, having marked what it disposes
        }));
        Assert.EndsWith(objectName, stopped.ObjectName);
        Assert.Equal(0, lastStep);
        Assert.True(disposer!.Join(10_000));
        Assert.Null(disposer.Thrown);
        Assert.Equal(0, backend.Arena.AllocatedBytes);
        pipe.Dispose();
        backend.Dispose();
    }

    /// <summary>A pipeline disposed while its backend's disposal waits for another thread's work waits too: it must not
    /// return its weights to the arena under that work, nor beside the backend's own freeing.</summary>
    [Fact]
    public void DisposingAPipelineWhileItsBackendIsBeingDisposedWaitsForTheOtherThreadsWork()
    {
        var backend = Backend.Create(DeviceKind.Cpu);
        var pipe = DiTPipeline.Load(RepoFile("models", "dit-digits"), backend);
        WorkerThread backendDisposer, pipelineDisposer;
        using (backend.Claim("another thread's work"))
        {
            backendDisposer = new WorkerThread(backend.Dispose);
            backendDisposer.UntilBlocked();
            pipelineDisposer = new WorkerThread(pipe.Dispose);
            pipelineDisposer.UntilBlocked();
            Assert.False(pipelineDisposer.Join(100));
        }
        Assert.True(backendDisposer.Join(10_000) && pipelineDisposer.Join(10_000));
        Assert.Null(backendDisposer.Thrown ?? pipelineDisposer.Thrown);
        Assert.Throws<ObjectDisposedException>(() => pipe.Generate(new GenerationOptions { Labels = [1], Steps = 1 }));
    }

    /// <summary>Disposed from its own onStep, the pipeline stops at the next step and, once the job's buffers are back,
    /// frees them too.</summary>
    [Fact]
    public void DisposingThePipelineFromItsOwnCallbackFreesTheJobsBuffersToo()
    {
        using var backend = Backend.Create(DeviceKind.Cpu);
        var pipe = DiTPipeline.Load(RepoFile("models", "dit-digits"), backend);
        Assert.Throws<ObjectDisposedException>(() => pipe.Generate(new GenerationOptions { Labels = [2], Steps = 3 }, _ => pipe.Dispose()));
        Assert.Equal(0, backend.Arena.AllocatedBytes);
    }

    /// <summary>The arena is not thread-safe: ReleaseFree from another thread while a generation runs is refused, and a
    /// model loaded onto the backend meanwhile waits for the generation to end.</summary>
    [Fact]
    public void ReleasingOrLoadingOnABackendAnotherThreadGeneratesOnWaitsOrIsRefused()
    {
        using var backend = Backend.Create(DeviceKind.Cpu);
        using var pipe = DiTPipeline.Load(RepoFile("models", "dit-digits"), backend);
        var options = new GenerationOptions { Labels = [5], Steps = 2, Seed = 1 };
        var expected = pipe.Generate(options);
        Exception? released = null;
        DiTPipeline? second = null;
        WorkerThread? loader = null;
        var result = pipe.Generate(options, step =>
        {
            if (step.Index > 0) return;
            released = ThrownOnAnotherThread(() => backend.Arena.ReleaseFree());
            loader = new WorkerThread(() => second = DiTPipeline.Load(RepoFile("models", "dit-digits"), backend));
            // Reading the folder takes a moment; then it blocks on this generation's claim, and cannot have loaded.
            loader.UntilBlocked();
            Assert.False(loader.Join(200));
            Assert.Null(second);
        });
        Assert.Contains("TensorArena.ReleaseFree: the backend", Assert.IsType<InvalidOperationException>(released).Message);
        Assert.Equal(expected.Latents, result.Latents);
        Assert.True(loader!.Join(30_000));
        Assert.Null(loader.Thrown);
        using (second) Assert.Equal(expected.Latents, second!.Generate(options).Latents);
    }

    [Fact]
    public void AFileWhereTheModelFolderBelongsIsSaidSo()
    {
        var e = Assert.Throws<SmoothCache.Model.Checkpoints.CheckpointNotFoundException>(
            () => DiTPipeline.Load(RepoFile("models", "dit-digits", "model_index.json"), Cpu));
        Assert.Contains("is a file: expected a folder", e.Message);
    }
}
