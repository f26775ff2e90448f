using System.Reflection;
using SmoothCache.Cli.Bench;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The CUDA kernels cannot run here, but ILGPU can translate them to PTX without a device: these
/// tests catch kernels ILGPU rejects, and check the generated code has the intended shape
/// (tensor-core instructions, 16-byte loads, no local-memory arrays).
/// </summary>
public class PtxGenerationTests
{
    private static string CompileToPtx(MethodInfo kernel)
    {
        using var compiler = new PtxCompiler();
        return compiler.Compile(kernel);
    }

    private static MethodInfo Kernel(Type type, Type epilogue) =>
        type.GetMethod("Kernel", BindingFlags.Public | BindingFlags.Static)!.MakeGenericMethod(epilogue);

    /// <summary>The TMA GEMM as it runs on CUDA (identity epilogue, 128 x 128 blocks) in a layout and on a ring.</summary>
    private static MethodInfo TmaKernel(Type layout, Type ring) =>
        typeof(LinearWgmmaTma).GetMethod("Kernel")!.MakeGenericMethod(typeof(IdentityEpilogue), typeof(LinearWgmma.Ptx),
            typeof(LinearWgmmaTma.Tma), layout, typeof(LinearWgmma.OneWarpGroup), ring);

    /// <summary>Whether <see cref="HalfConversion.RoundToHalfBits"/> is compiled in: its overflow bound 0x477FF000.</summary>
    private static bool HasPortableRounding(string ptx) => ptx.Contains(0x477FF000.ToString());

    private static int Count(string text, string what) => (text.Length - text.Replace(what, "").Length) / what.Length;

    [Theory]
    [InlineData(typeof(IdentityEpilogue))]
    [InlineData(typeof(GeluTanhEpilogue))]
    public void TensorCoreKernelTranslatesToAPipelineOfAsyncCopiesLdmatrixAndMma(Type epilogue)
    {
        var kernel = typeof(LinearTensorCore).GetMethod("Kernel")!.MakeGenericMethod(epilogue, typeof(LinearTensorCore.Ptx));
        var ptx = CompileToPtx(kernel);
        // The PTX path only: no emulation (warp shuffles) compiled in.
        Assert.DoesNotContain("shfl", ptx);
        // Registers declared before their first use (PTX requires it).
        Assert.True(ptx.IndexOf(".reg .f32 acc<128>;") < ptx.IndexOf("mma.sync"));
        // 2 steps of 32 mma (a warp's 64 x 64 tile) per K tile, each step's fragments from 8 ldmatrix.
        Assert.Equal(64, Count(ptx, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"));
        Assert.Equal(16, Count(ptx, "ldmatrix.sync.aligned.m8n8.x4.shared.b16"));
        // Staging in the prologue and in the loop: x and W each (4 async copies), plus the x-only copy of the
        // loop for blocks with fewer W rows than x rows (empty here: ptxas drops it); no register staging.
        Assert.Equal(6, Count(ptx, "cp.async.cg.shared.global"));
        // The only 16-byte loads into registers are split-K's finish (partial sums and bias), after the multiplies.
        Assert.True(ptx.IndexOf("ld.global.v4") > ptx.LastIndexOf("mma.sync"));
        Assert.Equal(1, Count(ptx, "cp.async.wait_group 1;"));
        // TensorCore.SharedBase names ILGPU's one shared allocation, 16-byte aligned for cp.async/ldmatrix.
        Assert.Contains(".shared .align 16 .b8 __shared_alloca0[49152];", ptx);
        Assert.Matches(@"mov\.u32\s+%r\d+, __shared_alloca0;", ptx);
        // x is staged as fp16 as it is: conversions appear only after the last mma, where an fp16 output
        // is rounded by cvt, and only by cvt: the CUDA instance holds no portable rounding.
        Assert.True(Count(ptx, "cvt.rn.f16.f32") >= 128);
        Assert.True(ptx.IndexOf("cvt.rn.f16.f32") > ptx.LastIndexOf("mma.sync"));
        Assert.False(HasPortableRounding(ptx));
        // The asm operands left (the accumulators moved out for the stores) in registers: nothing in local memory.
        Assert.DoesNotContain(".local", ptx);
    }

    [Fact]
    public void Tf32x3KernelSplitsEachFragmentWordAndIssuesThreeMmaPerTile()
    {
        var kernel = typeof(LinearTensorCore).GetMethod("Kernel")!.MakeGenericMethod(typeof(IdentityEpilogue), typeof(LinearTensorCore.PtxTf32x3));
        var ptx = CompileToPtx(kernel);
        Assert.DoesNotContain("shfl", ptx);
        // Per 8-deep step: 32 fragment words, 2 cvt each (big, then small from the rest), and 32 tiles x 3
        // products; two steps per tile.
        Assert.Equal(128, Count(ptx, "cvt.rna.tf32.f32"));
        Assert.Equal(192, Count(ptx, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"));
        Assert.Equal(16, Count(ptx, "ldmatrix.sync.aligned.m8n8.x4.shared.b16"));
        Assert.Equal(6, Count(ptx, "cp.async.cg.shared.global"));
    }

    [Fact]
    public void WgmmaKernelIssuesFourWarpgroupMultipliesPerTileFromDynamicSharedMemory()
    {
        var kernel = typeof(LinearWgmma).GetMethod("Kernel")!.MakeGenericMethod(typeof(IdentityEpilogue), typeof(LinearWgmma.Ptx), typeof(LinearWgmma.OneWarpGroup));
        var ptx = CompileToPtx(kernel);
        Assert.DoesNotContain("shfl", ptx);
        Assert.DoesNotContain("ldmatrix", ptx);
        // Two 16-deep steps x two 64-row halves per K tile, fenced, committed, and at most one tile in flight.
        Assert.Equal(4, Count(ptx, "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16"));
        Assert.Equal(1, Count(ptx, "wgmma.fence.sync.aligned;"));
        Assert.Equal(1, Count(ptx, "wgmma.commit_group.sync.aligned;"));
        Assert.Equal(1, Count(ptx, "wgmma.wait_group.sync.aligned 1;"));
        Assert.Equal(1, Count(ptx, "wgmma.wait_group.sync.aligned 0;"));
        Assert.Contains("__dyn_shared_alloca", ptx);
        Assert.True(ptx.IndexOf(".reg .f32 acc<128>;") < ptx.IndexOf("wgmma.mma_async"));
    }

    [Theory]
    [InlineData(typeof(LinearWgmmaTma.Plain))]
    [InlineData(typeof(LinearWgmmaTma.Swizzled64))]
    public void TmaGemmLoadsEachTileWithBoxCopiesOnOneMbarrier(Type layout)
    {
        var kernel = TmaKernel(layout, typeof(LinearWgmmaTma.BarrierRing));
        var ptx = CompileToPtx(kernel);
        // Loads in the prologue and in the K loop: each an expect_tx arrival, then x's and W's boxes (in a loop
        // over the tile's 4 chunks or its one 32-column box).
        Assert.Equal(2, Count(ptx, "mbarrier.arrive.expect_tx.shared::cta.b64"));
        Assert.Equal(4, Count(ptx, "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"));
        Assert.Equal(1, Count(ptx, "mbarrier.try_wait.parity.shared::cta.b64"));
        Assert.Equal(1, Count(ptx, "mbarrier.init.shared::cta.b64"));
        Assert.DoesNotContain("cp.async.cg", ptx);
        Assert.Equal(4, Count(ptx, "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16"));
        // The tensor maps lie in global memory, written by an earlier launch: the loading thread acquires both
        // for the tensor-map proxy before its first load.
        Assert.Equal(2, Count(ptx, "fence.proxy.tensormap::generic.acquire.gpu"));
        Assert.DoesNotContain("cvta.param", ptx);
        // ILGPU's asm operands (the accumulators moved out for the stores) in registers, not local memory: with TMA's
        // copies in the kernel ptxas leaves them there (PtxTarget.PromoteLocalScalars).
        Assert.DoesNotContain(".local", ptx);
        // The grid after it may launch once every block has issued its last multiplies, before the stores.
        int trigger = ptx.IndexOf("griddepcontrol.launch_dependents;", StringComparison.Ordinal);
        Assert.Equal(1, Count(ptx, "griddepcontrol.launch_dependents;"));
        Assert.True(trigger > ptx.LastIndexOf("wgmma.mma_async", StringComparison.Ordinal));
        Assert.True(trigger < ptx.LastIndexOf("st.global", StringComparison.Ordinal));
    }

    [Fact]
    public void TmaGemmInDeepTilesLoadsOneBoxPerOperandAndKeepsBothGroupsOfATilesMultipliesInFlight()
    {
        var ptx = CompileToPtx(TmaKernel(typeof(LinearWgmmaTma.Swizzled128), typeof(LinearWgmmaTma.ShallowReleasedRing)));
        // A 64-deep tile: x's and W's 128-byte rows each one box, in the prologue and the K loop.
        Assert.Equal(4, Count(ptx, "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"));
        // Its multiplies in two calls of four (a loop over the K steps), and the wait after them leaves both calls' groups
        // in flight: every earlier tile's are done before its stage is released.
        Assert.Equal(4, Count(ptx, "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16"));
        Assert.Equal(1, Count(ptx, "wgmma.wait_group.sync.aligned 2;"));
        Assert.DoesNotContain("wgmma.wait_group.sync.aligned 1;", ptx);
        Assert.DoesNotContain(".local", ptx);
    }

    [Fact]
    public void TmaGemmOnTheReleasedRingFreesStagesByMbarrierInsteadOfABlockBarrierPerTile()
    {
        var kernel = TmaKernel(typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmmaTma.ReleasedRing));
        var ptx = CompileToPtx(kernel);
        // Each warp's release of a stage (a plain arrival), the loading thread's wait for them besides every thread's
        // wait for the copies, the release mbarriers initialised after the copies' ones.
        Assert.Equal(1, Count(ptx, "mbarrier.arrive.shared::cta.b64"));
        Assert.Equal(2, Count(ptx, "mbarrier.try_wait.parity.shared::cta.b64"));
        Assert.Equal(2, Count(ptx, "mbarrier.init.shared::cta.b64"));
        // One block barrier after the mbarriers are initialised and one before split-K's arrival; none in the K loop.
        Assert.Equal(2, Count(ptx, "bar.sync"));
        Assert.True(ptx.LastIndexOf("bar.sync") > ptx.LastIndexOf("wgmma.mma_async"));
    }

    [Fact]
    public void TmaGemmInClustersMulticastsItsShareOfWAndReleasesStagesInEveryBlock()
    {
        var kernel = TmaKernel(typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmmaTma.MulticastRing));
        var ptx = CompileToPtx(kernel);
        // x from this block's own load, W from each block's half, multicast to both (mask 3), in the prologue and the loop.
        Assert.Equal(2, Count(ptx, ".multicast::cluster ["));
        Assert.Equal(2, Count(ptx, "complete_tx::bytes ["));
        Assert.Matches(@"\.multicast::cluster \[[^;]*\], 3;", ptx);
        // Releases reach every block's mbarrier through its cluster address, with no fence of their own.
        Assert.Contains("mapa.shared::cluster.u32", ptx);
        Assert.Contains("mbarrier.arrive.shared::cluster.b64 _,", ptx);
        Assert.DoesNotContain("mbarrier.arrive.release", ptx);
        Assert.Contains("%cluster_ctarank", ptx);
        // Cluster barriers after the mbarriers are set up and before any block leaves; no block barrier in the K loop.
        Assert.Equal(2, Count(ptx, "barrier.cluster.arrive.aligned"));
        Assert.True(ptx.IndexOf("barrier.cluster.wait.aligned") < ptx.IndexOf("multicast"));
        Assert.True(ptx.LastIndexOf("barrier.cluster.wait.aligned") > ptx.LastIndexOf("wgmma.mma_async"));
    }

    [Fact]
    public void TensorCoreAttentionKeepsItsAsmOperandsOutOfLocalMemoryPaths()
    {
        var kernel = typeof(FlashAttentionTensorCore).GetMethod("Kernel")!.MakeGenericMethod(typeof(TensorCore.PtxPath));
        var ptx = CompileToPtx(kernel);
        // Scores: 4 or 5 steps of 8 mma; P V: 4 steps of 8 or 9. Written once each (steps are calls).
        Assert.True(Count(ptx, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32") >= 17);
        Assert.Contains("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16", ptx);
        Assert.Contains("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16", ptx);
        Assert.Contains("cvt.rn.f16x2.f32", ptx);
        Assert.False(HasPortableRounding(ptx));
        // No asynchronous copy (cp.async, nor TMA's cp.async.bulk): with one ptxas leaves ILGPU's asm operands in local
        // memory (a 4 KB stack, checked with ptxas 12.4).
        Assert.DoesNotContain("cp.async", ptx);
        // Probabilities as 2^(s c - max c): the scale folded into the exponent, no multiply by log2 e per score (what
        // MathF.Exp becomes).
        Assert.Contains("ex2.approx.ftz.f32", ptx);
        Assert.DoesNotContain("0f3FB8AA3B", ptx);
        // Only the row max and sum exchange across lanes (2 shuffles each, per tile and at the end).
        Assert.Equal(8, Count(ptx, "shfl.sync.bfly"));
        Assert.Contains(".shared .align 16 .b8 __shared_alloca0[31744];", ptx);
    }

    [Fact]
    public void AsyncAttentionCopiesKeyTilesWithCpAsyncAndKeepsItsAsmOperandsInRegisters()
    {
        var kernel = typeof(FlashAttentionTensorCore).GetMethod(nameof(FlashAttentionTensorCore.AsyncKernel))!.MakeGenericMethod(typeof(TensorCore.PtxPath));
        var ptx = CompileToPtx(kernel);
        // A row's first 8 chunks in a loop, the ninth (head dim 72) after it: the first tile's copies and the next one's.
        Assert.Equal(4, Count(ptx, "cp.async.cg.shared.global"));
        Assert.Equal(2, Count(ptx, "cp.async.commit_group"));
        Assert.Equal(1, Count(ptx, "cp.async.wait_all"));
        // ILGPU's asm operands promoted to registers (PtxTarget.PromoteLocalScalars): nothing left in local memory.
        Assert.DoesNotContain("__local_depot", ptx);
        Assert.DoesNotContain(".local", ptx);
        Assert.Contains(".reg .b32 \t%dp<", ptx);
        // Without the edit (SMOOTHCACHE_PROMOTE_LOCALS=off) they stay where ILGPU put them.
        using (var compiler = new PtxCompiler())
            Assert.Contains("__local_depot", PtxTarget.ApplyEdits(kernel, compiler.CompileKernel(kernel).PTXAssembly, promoteLocals: false));
        // Four blocks of 128 threads a multiprocessor: ptxas keeps a thread within 128 registers.
        Assert.Contains(".maxntid 128, 1, 1\n.minnctapersm 4", ptx);
        // Two buffers of a key tile; one barrier a tile plus the one after the queries are staged.
        Assert.Contains(".shared .align 16 .b8 __shared_alloca0[40960];", ptx);
        Assert.Equal(2, Count(ptx, "bar.sync"));
    }

    [Fact]
    public void SgemmTranslatesWithVectorSharedLoadsAndNoLocalMemory()
    {
        var ptx = CompileToPtx(Kernel(typeof(Sgemm), typeof(IdentityEpilogue)));
        Assert.Contains("ld.shared.v4.f32", ptx);
        Assert.Contains("bar.sync", ptx);
        Assert.DoesNotContain(".local", ptx);
    }

    [Theory]
    [InlineData(typeof(Floats), "ld.global.v4.f32", 0)]
    [InlineData(typeof(Halves), "ld.global.v2.b32", 36)]  // and the stored x rounded: 36 more conversions
    public void RowLayerNormSumsEachRowInsideItsWarpWithoutBarriersOrLocalMemory(Type view, string load, int xRounding)
    {
        var ptx = CompileToPtx(typeof(LayerNormModulateRow).GetMethod("Kernel")!.MakeGenericMethod(typeof(HalfConversion.CudaRounding), view));
        Assert.Equal(10, Count(ptx, "shfl.sync.bfly"));
        Assert.Equal(36 + xRounding, Count(ptx, "cvt.rn.f16.f32")); // 9 float4s a lane, for an fp16 y
        Assert.False(HasPortableRounding(ptx));
        Assert.Equal(0, Count(ptx, "bar.sync"));
        Assert.DoesNotContain(".local", ptx);
        // Every load of x and the residuals whole (16 bytes of float32, 8 of float16): x, then two residuals, whole rows
        // of warps or not, 9 float4s each; none a float or a word at a time.
        Assert.True(Count(ptx, load) >= 3 * 2 * 9, ptx);
        Assert.DoesNotContain("ld.global.f32", ptx);
        Assert.DoesNotContain("ld.global.b32", ptx);
    }

    [Theory]
    [InlineData(typeof(Floats), "ld.global.v4.f32", 3)]  // x, then y and y2
    [InlineData(typeof(Halves), "ld.global.v2.b32", 3)]
    public void GatedResidualLoadsWholeFloat4s(Type residual, string load, int count)
    {
        var args = typeof(GatedResidual.Vector4Args<>).MakeGenericType(residual);
        var ptx = CompileToPtx(typeof(ElementLauncher).GetMethod("Kernel")!.MakeGenericMethod(args));
        Assert.True(Count(ptx, load) >= count, ptx);
        Assert.DoesNotContain("ld.global.f32", ptx);
        Assert.DoesNotContain("ld.global.b32", ptx);
    }

    [Fact]
    public void SkinnyGemmTranslatesToVectorLoadsAndShufflesWithoutLocalMemory()
    {
        var ptx = CompileToPtx(Kernel(typeof(LinearSkinny), typeof(IdentityEpilogue)));
        Assert.Equal(8 + 4 + 2 + 1 + 1, Count(ptx, "shfl.sync.bfly")); // 16 row sums, halving at each step
        Assert.Contains("ld.global.v4", ptx);
        Assert.DoesNotContain(".local", ptx);
    }
}
