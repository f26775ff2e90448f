using ILGPU;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using Half = ILGPU.Half;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The TMA-loaded Hopper GEMM on the CPU accelerator: one thread copies each box as the copy engine would
/// (zeros past the matrix) into the stage layout the kernel's descriptors name, and wgmma is emulated from
/// those descriptors, so the layout, the descriptors' strides, the stage ring and split-K are the CUDA
/// kernel's own. The tensor maps, mbarriers and the copy engine itself only a GPU checks.
/// </summary>
public class LinearWgmmaTmaTests : HopperGemmTests
{
    protected override void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmmaTma.Run<TEpilogue, TBlock>(Cpu, x, w, bias, y, m, splits);
}
