using SmoothCache.Caching;
using SmoothCache.Kernels;

namespace SmoothCache.Tests.Caching;

[Collection(CpuBackendCollection.Name)]
public class RelativeL1KernelTests(CpuBackendFixture fixture)
{
    private readonly Backend _backend = fixture.Backend;

    private static float[] RandomData(Random random, int length, double scale) =>
        Enumerable.Range(0, length).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale)).ToArray();

    [Theory]
    [InlineData(1)]
    [InlineData(4097)]
    [InlineData(12_289)]
    [InlineData(1_000_003)]
    public void MatchesTheHostOnRandomData(int length)
    {
        var random = new Random(length);
        var current = RandomData(random, length, 1.0);
        var earlier = new[] { 0.01, 0.3, 2.0 }
            .Select(noise => current.Select(v => v + (float)((random.NextDouble() * 2 - 1) * noise)).ToArray())
            .ToArray();

        using var currentTensor = _backend.Arena.Upload(current, length);
        var earlierTensors = earlier.Select(e => _backend.Arena.Upload(e, length)).ToList();
        try
        {
            var errors = RelativeL1Kernel.Compute(currentTensor, earlierTensors);
            Assert.Equal(earlier.Length, errors.Length);
            for (int c = 0; c < earlier.Length; c++)
            {
                double expected = RelativeL1Kernel.Reference(earlier[c], current);
                Assert.True(Math.Abs(errors[c] - expected) <= 1e-6 * Math.Max(1, expected),
                    $"comparison {c}: host {expected}, device {errors[c]}");
            }
        }
        finally
        {
            earlierTensors.ForEach(t => t.Dispose());
        }
    }

    [Fact]
    public void Float16OutputsGiveWhatTheirWidenedValuesGive()
    {
        // The fp16 path's component outputs, calibrated as they are.
        using var current = TestSupport.HalfAndWidened(_backend, 3, 5000);
        using var earlier = TestSupport.HalfAndWidened(_backend, 4, 5000);
        float error = RelativeL1Kernel.Compute(current.Half, [earlier.Half])[0];
        Assert.Equal(RelativeL1Kernel.Compute(current.Wide, [earlier.Wide])[0], error);
        Assert.True(Math.Abs(error - RelativeL1Kernel.Reference(earlier.Half.ToArray(), current.Half.ToArray())) <= 1e-6);
    }

    [Fact]
    public void NothingToCompareGivesNoErrors()
    {
        using var current = _backend.Arena.Upload([1f, 2f], 2);
        Assert.Empty(RelativeL1Kernel.Compute(current, []));
    }

    [Fact]
    public void MismatchedTensorsAreRejected()
    {
        using var current = _backend.Arena.Upload([1f, 2f, 3f], 3);
        using var shorter = _backend.Arena.Upload([1f, 2f], 2);
        var e = Assert.Throws<ArgumentException>(() => RelativeL1Kernel.Compute(current, [shorter]));
        Assert.Contains("[2]", e.Message);
        using var half = _backend.Arena.Rent(DType.Float16, 3);
        Assert.Throws<ArgumentException>(() => RelativeL1Kernel.Compute(half, [current]));
    }

    [Fact]
    public void ReferenceDividesByTheLaterStep()
    {
        // |1-2| + |2-2| + |-1-(-4)| = 4 over |2| + |2| + |-4| = 8.
        Assert.Equal(0.5, RelativeL1Kernel.Reference([1f, 2f, -1f], [2f, 2f, -4f]), 12);
    }
}
