using System.CommandLine;
using System.Reflection;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Cli.Bench;

/// <summary>
/// `smoothcache ptx --out DIR`: writes the PTX of every CUDA kernel, compiled by ILGPU without a
/// device, one file per kernel. scripts/ptxas-check.sh assembles them with NVIDIA's ptxas (registers,
/// spills, shared memory, and whether the inline PTX is valid) — kernel work without a GPU.
/// </summary>
public static class PtxCommand
{
    public static Command Create(CliContext context)
    {
        var output = new Option<string>("--out") { Description = "folder to write the .ptx files to", Required = true };
        var command = new Command("ptx", "Write the PTX of every CUDA kernel (compiled without a device) to a folder.");
        command.Add(output);
        command.SetAction(parse =>
        {
            string folder = UserErrors.OutputFolder("--out", parse.GetValue(output)!);
            Directory.CreateDirectory(folder);
            foreach (var (name, ptx) in CompileAll())
            {
                AtomicFile.WriteAllText(Path.Combine(folder, name + ".ptx"), ptx);
                context.Out.WriteLine(name);
            }
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>
    /// The kernels of a tiny synthetic DiT run fp32 and fp16 with the
    /// GPU kernel set on the CPU accelerator, which loads each kernel the CUDA path launches, plus the
    /// PTX instances of the tensor-core kernels, compiled as a Hopper GPU (the lent H100 and H200) loads them.
    /// </summary>
    public static IEnumerable<(string Name, string Ptx)> CompileAll()
    {
        var kernels = new List<MethodInfo>();
        using (var cpu = Backend.Create(DeviceKind.Cpu, KernelSet.Gpu))
        {
            // The least that takes every CUDA code path: head dim 72 (fused attention), 2 x 16 tokens
            // (more than LinearSkinny's 16 rows).
            var config = GpuChecks.SmallConfig with { NumHeads = 1, NumLayers = 1, SampleSize = 8 };
            foreach (var precision in new[] { Precision.Fp32, Precision.Fp16 })
            {
                using var weights = new SyntheticWeights(config, seed: 1);
                using var model = new DiTTransformer(cpu, config, weights, precision);
                using var latents = cpu.Arena.Zeros(2, config.InChannels, config.SampleSize, config.SampleSize);
                using var y = model.Forward(latents, [500f, 500f], [0, config.NullClass]);
            }
            // A reused component's residual, added on a launch of its own, to float32 x and to float16 x (the fp16 path's).
            using var x = cpu.Arena.Zeros(1, 4, 8);
            using var gate = cpu.Arena.Zeros(1, 8);
            using var halfX = HalfConversion.ToHalf(x);
            GatedResidual.Run(x, gate, x, 0);
            GatedResidual.Run(halfX, gate, halfX, 0);
            // The VAE decoder's operators (a latent model's last step): a convolution as a GEMM with a residual, GroupNorm
            // with SiLU, Upsample, and attention at a head dim the fused kernels lack (as two GEMMs).
            using (var image = cpu.Arena.Zeros(1, 4, 4, 4))
            using (var kernel = cpu.Arena.Zeros(4, 4, 3, 3))
            using (var channels = cpu.Arena.Zeros(4))
            using (var conv = Conv2d.Run<SiluEpilogue>(image, kernel, channels, image))
            using (var normed = GroupNorm.Run<SiluEpilogue>(conv, 2, channels, channels, 1e-6f))
            using (Upsample.Run(normed))
            using (var qkv = cpu.Arena.Zeros(1, 4, 3 * 12))
            using (Attention.Run(qkv, 1, 12)) { }
            // A kernel whose instance depends on the accelerator (its fp16 rounding) as CUDA loads it.
            kernels.AddRange(cpu.LoadedKernels.Select(AsOnCuda));
        }
        // The tensor-core kernels run on CUDA only (tests call their emulated instances directly).
        foreach (var epilogue in new[] { typeof(IdentityEpilogue), typeof(GeluTanhEpilogue), typeof(SiluEpilogue) })
            foreach (var path in new[] { typeof(LinearTensorCore.Ptx), typeof(LinearTensorCore.PtxTf32x3) })
                kernels.Add(typeof(LinearTensorCore).GetMethod(nameof(LinearTensorCore.Kernel))!.MakeGenericMethod(epilogue, path));
        foreach (var epilogue in new[] { typeof(IdentityEpilogue), typeof(SiluEpilogue) })
            foreach (var shape in new[] { typeof(LinearSkinnyTensorCore.Columns32), typeof(LinearSkinnyTensorCore.Columns16), typeof(LinearSkinnyTensorCore.Columns8) })
                kernels.Add(typeof(LinearSkinnyTensorCore).GetMethod(nameof(LinearSkinnyTensorCore.Kernel))!.MakeGenericMethod(epilogue, typeof(TensorCore.PtxPath), shape));
        foreach (var attention in new[] { nameof(FlashAttentionTensorCore.Kernel), nameof(FlashAttentionTensorCore.AsyncKernel) })
            kernels.Add(typeof(FlashAttentionTensorCore).GetMethod(attention)!.MakeGenericMethod(typeof(TensorCore.PtxPath)));
        var hopper = (from epilogue in new[] { typeof(IdentityEpilogue), typeof(GeluTanhEpilogue), typeof(SiluEpilogue) }
                      from block in new[] { typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmma.TwoWarpGroups), typeof(LinearWgmma.OneWarpGroupCompact) }
                      select typeof(LinearWgmma).GetMethod(nameof(LinearWgmma.Kernel))!.MakeGenericMethod(epilogue, typeof(LinearWgmma.Ptx), block))
                     .ToList();
        // The TMA GEMM as Linear takes it (every epilogue), its other layout and block shape, and its other rings.
        var tma = typeof(LinearWgmmaTma).GetMethod(nameof(LinearWgmmaTma.Kernel))!;
        hopper.AddRange(from epilogue in new[] { typeof(IdentityEpilogue), typeof(GeluTanhEpilogue), typeof(SiluEpilogue) }
                        select tma.MakeGenericMethod(epilogue, typeof(LinearWgmma.Ptx), typeof(LinearWgmmaTma.Tma), typeof(LinearWgmmaTma.Swizzled64),
                            typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.BarrierRing)));
        hopper.AddRange(from variant in new[]
                        {
                            (typeof(LinearWgmmaTma.Plain), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.BarrierRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.TwoWarpGroups), typeof(LinearWgmmaTma.BarrierRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.DeepBarrierRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.ReleasedRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.TwoWarpGroups), typeof(LinearWgmmaTma.ReleasedRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.TwoWarpGroups), typeof(LinearWgmmaTma.DeepBarrierRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.MulticastRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.DeepReleasedRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.TwoWarpGroups), typeof(LinearWgmmaTma.MulticastRing)),
                            (typeof(LinearWgmmaTma.Swizzled64), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.ShallowReleasedRing)),
                            (typeof(LinearWgmmaTma.Swizzled128), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.BarrierRing)),
                            (typeof(LinearWgmmaTma.Swizzled128), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.ShallowRing)),
                            (typeof(LinearWgmmaTma.Swizzled128), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.ShallowReleasedRing)),
                            (typeof(LinearWgmmaTma.Swizzled128), typeof(LinearWgmma.TwoWarpGroups), typeof(LinearWgmmaTma.ReleasedRing)),
                            (typeof(LinearWgmmaTma.Swizzled128), typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.MulticastRing)),
                        }
                        select tma.MakeGenericMethod(typeof(IdentityEpilogue), typeof(LinearWgmma.Ptx), typeof(LinearWgmmaTma.Tma), variant.Item1, variant.Item2, variant.Item3));
        // The benchmark's timing-only instances run on the device too.
        hopper.AddRange(from path in new[] { typeof(CopiesOnly), typeof(MultipliesOnly) }
                        select typeof(LinearWgmma).GetMethod(nameof(LinearWgmma.Kernel))!
                            .MakeGenericMethod(typeof(IdentityEpilogue), path, typeof(LinearWgmma.OneWarpGroup)));
        hopper.AddRange(from parts in new[] { (typeof(CopiesOnly), typeof(LinearWgmmaTma.Tma)), (typeof(LinearWgmma.Ptx), typeof(TmaArrivalsOnly)) }
                        select tma.MakeGenericMethod(typeof(IdentityEpilogue), parts.Item1, parts.Item2, typeof(LinearWgmmaTma.Swizzled64),
                            typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.BarrierRing)));
        hopper.Add(tma.MakeGenericMethod(typeof(IdentityEpilogue), typeof(LinearWgmma.Ptx), typeof(TmaArrivalsOnly), typeof(LinearWgmmaTma.Swizzled128),
            typeof(LinearWgmma.OneWarpGroup), typeof(LinearWgmmaTma.ShallowRing)));

        // As a Hopper GPU loads them (Backend.LoadCompiled): every kernel waiting for the grids before it, for sm_90,
        // and the wgmma kernels for sm_90a, the TMA GEMM in its ring's clusters.
        using var compiler = new PtxCompiler();
        foreach (var kernel in kernels.Distinct())
            yield return (FileName(kernel), PtxTarget.Retarget(compiler.Compile(kernel), PtxTarget.DependentLaunch, waitForPrerequisiteGrids: true));
        foreach (var kernel in hopper)
            yield return (FileName(kernel), PtxTarget.Retarget(compiler.Compile(kernel), PtxTarget.Hopper, ClusterRows(kernel), waitForPrerequisiteGrids: true));
    }

    private static MethodInfo AsOnCuda(MethodInfo kernel) =>
        kernel.IsGenericMethod && kernel.GetGenericArguments().Contains(typeof(HalfConversion.PortableRounding))
            ? kernel.GetGenericMethodDefinition().MakeGenericMethod(kernel.GetGenericArguments()
                .Select(t => t == typeof(HalfConversion.PortableRounding) ? typeof(HalfConversion.CudaRounding) : t).ToArray())
            : kernel;

    private static int ClusterRows(MethodInfo kernel) =>
        kernel.DeclaringType == typeof(LinearWgmmaTma)
            ? ((LinearWgmmaTma.IRing)Activator.CreateInstance(kernel.GetGenericArguments()[5])!).Cluster()
            : 1;

    /// <summary>e.g. ElementLauncher.Kernel[Unpatchify.Args] or LinearTensorCore.Kernel[GeluTanhEpilogue,LinearTensorCore.Ptx].</summary>
    private static string FileName(MethodInfo kernel) =>
        kernel.DeclaringType!.Name + "." + kernel.Name +
        (kernel.IsGenericMethod ? "[" + string.Join(",", kernel.GetGenericArguments().Select(TypeName)) + "]" : "");

    private static string TypeName(Type t) =>
        (t.IsNested ? t.DeclaringType!.Name + "." : "") +
        (t.IsGenericType ? t.Name[..t.Name.IndexOf('`')] + "[" + string.Join(",", t.GetGenericArguments().Select(TypeName)) + "]" : t.Name);
}
