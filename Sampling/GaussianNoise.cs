namespace SmoothCache.Sampling;

/// <summary>
/// The project's seeded standard-normal generator (not torch's: the same seed gives other numbers than
/// torch.manual_seed; to compare with a PyTorch run, pass its initial noise, e.g. `generate --noise`). Element i of stream s
/// under seed k is
///   u1 = U(2i), u2 = U(2i + 1),  U(n) = (Mix(key + (n + 1) * G) >> 11 + 0.5) / 2^53,  key = Mix(Mix(k) ^ s),
///   z  = sqrt(-2 ln u1) cos(2 pi u2)     (Box–Muller, cosine branch; computed in float64)
/// where G = 0x9E3779B97F4A7C15 and Mix is the SplitMix64 finaliser. Hashing the seed makes nearby seeds unrelated (a key
/// of k * G made seed k + 2 seed k's noise moved along by one element). Every element depends only on (seed, stream,
/// index), so the numbers are the same on any device, thread count or batch split. Stream 0 is the initial noise;
/// stream 1 + step the DDPM noise.
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
        ulong key = Mix(Mix(unchecked((ulong)seed)) ^ (ulong)stream);
        for (long i = 0; i < count; i++)
        {
            double u1 = Uniform(key, 2 * (ulong)i), u2 = Uniform(key, 2 * (ulong)i + 1);
            z[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return z;
    }

    /// <summary>A uniform in (0, 1), never 0 (so the logarithm is finite).</summary>
    private static double Uniform(ulong key, ulong n) => ((Mix(unchecked(key + (n + 1) * Golden)) >> 11) + 0.5) / 9007199254740992.0;

    /// <summary>SplitMix64's finaliser: a bijection of 64-bit words whose every output bit depends on every input bit.</summary>
    private static ulong Mix(ulong x)
    {
        x = unchecked((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL);
        x = unchecked((x ^ (x >> 27)) * 0x94D049BB133111EBUL);
        return x ^ (x >> 31);
    }
}
