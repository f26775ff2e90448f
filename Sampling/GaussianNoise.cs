namespace SmoothCache.Sampling;

/// <summary>
/// The project's seeded standard-normal generator. Element i of stream s under seed k is
///   u1 = U(2i), u2 = U(2i + 1),  U(n) = (SplitMix64(k * 0x9E3779B97F4A7C15 ^ s, n) >> 11 + 0.5) / 2^53,
///   z  = sqrt(-2 ln u1) cos(2 pi u2)     (Box–Muller, cosine branch; computed in float64)
/// where SplitMix64(key, n) is the SplitMix64 finaliser of key + (n + 1) * 0x9E3779B97F4A7C15.
/// Every element depends only on (seed, stream, index), so the numbers are the same on any device,
/// thread count or batch split. Stream 0 is the initial noise; stream 1 + step the DDPM noise.
/// </summary>
public static class GaussianNoise
{
    private const ulong Golden = 0x9E3779B97F4A7C15UL;

    /// <summary>Standard-normal elements 0 .. <paramref name="count"/> - 1 of stream <paramref name="stream"/> under
    /// <paramref name="seed"/>, as float32 (a shorter draw is a prefix of a longer one). Stream 0 is a generation's initial
    /// noise ([B, C, S, S] flattened), stream 1 + i the noise DDPM adds at step i.</summary>
    /// <exception cref="ArgumentOutOfRangeException">count is negative</exception>
    public static float[] Sample(long seed, int stream, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var z = new float[count];
        ulong key = unchecked((ulong)seed * Golden) ^ (ulong)stream;
        for (long i = 0; i < count; i++)
        {
            double u1 = Uniform(key, 2 * (ulong)i), u2 = Uniform(key, 2 * (ulong)i + 1);
            z[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return z;
    }

    /// <summary>A uniform in (0, 1), never 0 (so the logarithm is finite).</summary>
    private static double Uniform(ulong key, ulong n)
    {
        ulong x = unchecked(key + (n + 1) * Golden);
        x = unchecked((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL);
        x = unchecked((x ^ (x >> 27)) * 0x94D049BB133111EBUL);
        x ^= x >> 31;
        return ((x >> 11) + 0.5) / 9007199254740992.0;
    }
}
