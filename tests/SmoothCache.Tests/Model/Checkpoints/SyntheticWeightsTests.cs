using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Tests.Model.Checkpoints;

public class SyntheticWeightsTests
{
    private const ulong A = 6364136223846793005UL, C = 1442695040888963407UL;
    private const float Scale = 0.034641016f;

    [Fact]
    public void SkippingAheadEqualsSteppingOneByOne()
    {
        ulong state = 0x1234_5678_9ABC_DEF0UL, stepped = state;
        for (long n = 0; n <= 3000; n++)
        {
            if (n is 0 or 1 or 2 or 1023 or 1024 or 3000) Assert.Equal(stepped, SyntheticWeights.Skip(state, n));
            stepped = unchecked(stepped * A + C);
        }
    }

    [Fact]
    public void ATensorLargerThanAChunkIsOneUnbrokenStream()
    {
        // fc1 of DiT-XL/2: 4608 x 1152 values, generated in parallel chunks of 2^20.
        const string name = "transformer_blocks.3.ff.net.0.proj.weight";
        const int seed = 7;
        var values = new SyntheticWeights(SyntheticWeights.XL2_256, seed).ReadFloat32(name, 4608, 1152);

        // The tensor's stream stepped one value at a time: seed mixed with the name's FNV-1a hash.
        ulong hash = 14695981039346656037UL;
        foreach (char ch in name) hash = unchecked((hash ^ ch) * 1099511628211UL);
        ulong state = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL) ^ hash;
        for (int i = 0; i < values.Length; i++)
        {
            state = unchecked(state * A + C);
            float expected = ((state >> 40) / (float)(1 << 24) * 2f - 1f) * Scale;
            if (values[i] != expected) Assert.Fail($"value {i}: {values[i]} != {expected}");
        }
        Assert.InRange(Math.Sqrt(values.Average(v => (double)v * v)), 0.0195, 0.0205); // uniform, sd 0.02
    }
}
