using SmoothCache.Cli.Bench;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Tests.Bench;

/// <summary>The bench's attention with one kind of instruction left out: each leaves out exactly that kind.</summary>
public class AttentionPartsTests
{
    private const string Mma = "mma.sync.aligned.m16n8k16", Ldmatrix = "ldmatrix.sync.aligned", Copy = "cp.async.cg.shared.global", Exp = "ex2.approx";

    private static string AsyncAttentionPtx(Type path)
    {
        using var compiler = new PtxCompiler();
        return compiler.Compile(typeof(FlashAttentionTensorCore).GetMethod(nameof(FlashAttentionTensorCore.AsyncKernel))!.MakeGenericMethod(path));
    }

    private static int Count(string text, string what) => (text.Length - text.Replace(what, "").Length) / what.Length;

    [Fact]
    public void EachPathLeavesOutItsInstructionsAndKeepsTheOthers()
    {
        string whole = AsyncAttentionPtx(typeof(TensorCore.PtxPath));
        string[] kinds = [Mma, Ldmatrix, Copy, Exp];
        int[] counts = kinds.Select(k => Count(whole, k)).ToArray();
        Assert.All(counts, c => Assert.True(c > 0));

        foreach (var (part, omitted) in new[] { (typeof(NoCopies), Copy), (typeof(NoMultiplies), Mma), (typeof(NoExponentials), Exp) })
        {
            string ptx = AsyncAttentionPtx(typeof(AttentionWithout<>).MakeGenericType(part));
            for (int k = 0; k < kinds.Length; k++)
                Assert.True(Count(ptx, kinds[k]) == (kinds[k] == omitted ? 0 : counts[k]),
                    $"{part.Name}: {Count(ptx, kinds[k])} of {kinds[k]}, the whole kernel has {counts[k]}");
            // Still promoted into registers, as the kernel it stands for.
            Assert.DoesNotContain(".local", ptx);
        }
    }
}
