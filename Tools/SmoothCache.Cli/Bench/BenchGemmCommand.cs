using System.CommandLine;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Cli.Bench;

/// <summary>`smoothcache bench-gemm`: the CUDA kernel checks, then the GEMM benchmarks; exit 1 if a check fails.</summary>
public static class BenchGemmCommand
{
    public static Command Create(CliContext context)
    {
        var json = new Option<string>("--json") { Description = "where to write the results as JSON", DefaultValueFactory = _ => "gemm-bench.json" };
        var iterations = new Option<int>("--iterations") { Description = "timed calls per kernel and shape", DefaultValueFactory = _ => 20 };
        var splits = new Option<int[]>("--splits")
        {
            Description = "also time the fp16 tensor-core GEMM split these ways along K (1-8 each), e.g. --splits 1 2 4",
            AllowMultipleArgumentsPerToken = true,
            DefaultValueFactory = _ => [],
        };
        var tma = new Option<bool>("--tma")
        {
            Description = "check and time only the TMA-loaded Hopper GEMM (beside cuBLAS and the cp.async one); needs an H100 or H200",
        };
        var cluster = new Option<bool>("--cluster")
        {
            Description = "with --tma: only the TMA GEMM in clusters of 2 row blocks that share W's tiles (multicast), beside the one without",
        };
        var device = DeviceOption.Create();
        device.Description = "cuda (CUDA device 0) or cuda:N";
        device.DefaultValueFactory = _ => "cuda";
        var command = new Command("bench-gemm", "Check the CUDA GEMM kernels against float64 and time them against cuBLAS.");
        command.Add(json);
        command.Add(device);
        command.Add(tma);
        command.Add(cluster);
        command.Add(iterations);
        command.Add(splits);
        command.SetAction(parse =>
        {
            string jsonPath = UserErrors.OutputFile("--json", parse.GetValue(json), ".json")!;
            int count = parse.GetValue(iterations);
            if (count < 1) throw new UserInputException($"--iterations must be at least 1, got {count}");
            int[] extra = parse.GetValue(splits)!;
            if (extra.Any(s => s is < 1 or > SplitK.MaxSplits))
                throw new UserInputException($"--splits takes split counts from 1 to {SplitK.MaxSplits}, got {string.Join(" ", extra)}");
            if (parse.GetValue(cluster) && !parse.GetValue(tma))
                throw new UserInputException("--cluster goes with --tma (it times the TMA GEMM in clusters)");
            if (parse.GetValue(tma) && Backend.KernelSetFromEnvironment() is not (KernelSet.Auto or KernelSet.Wgmma or KernelSet.WgmmaTma))
                throw new UserInputException("--tma times the Hopper GEMMs: unset SMOOTHCACHE_KERNELS or set it to wgmma or wgmma-tma");
            var choice = DeviceOption.Resolve(parse, device);
            if (choice.Kind == DeviceKind.Cpu)
                throw new UserInputException("--device cpu: bench-gemm checks and times the CUDA GEMMs against cuBLAS; give cuda or cuda:N");
            using var backend = CreateCuda(choice);
            if (parse.GetValue(tma) && !backend.UsesWgmma)
                throw new UserInputException($"--tma times the Hopper GEMMs, which need a compute-capability 9.0 GPU (H100, H200); this is {backend.DeviceName}");
            if (parse.GetValue(tma))
            {
                // Probe and checks first: a kernel that faults leaves nothing else to run.
                bool clusters = parse.GetValue(cluster);
                var tmaChecks = clusters
                    ? GpuChecks.TmaChecks<LinearWgmmaTma.Swizzled64>(backend, context.Out, clusters: true)
                        .Concat(GpuChecks.TmaChecks<LinearWgmmaTma.Swizzled128>(backend, context.Out, clusters: true)).ToArray()
                    : GpuChecks.TmaLayoutProbe<LinearWgmmaTma.Plain>(backend, context.Out)
                        .Concat(GpuChecks.TmaLayoutProbe<LinearWgmmaTma.Swizzled64>(backend, context.Out))
                        .Concat(GpuChecks.TmaLayoutProbe<LinearWgmmaTma.Swizzled128>(backend, context.Out))
                        .Concat(GpuChecks.TmaChecks<LinearWgmmaTma.Plain>(backend, context.Out))
                        .Concat(GpuChecks.TmaChecks<LinearWgmmaTma.Swizzled64>(backend, context.Out))
                        .Concat(GpuChecks.TmaChecks<LinearWgmmaTma.Swizzled128>(backend, context.Out)).ToArray();
                var tmaResults = GemmBench.Run(backend, context.Out, count, tma: true, clusters: clusters);
                GemmBench.WriteJson(jsonPath, backend.DeviceName, tmaResults, tmaChecks);
                return tmaChecks.All(c => c.Passed) ? ExitCodes.Success : ExitCodes.Internal;
            }
            // The wgmma layout probe first (SMOOTHCACHE_KERNELS=wgmma): what it logs is the most useful thing
            // a wrong Hopper GEMM can say, and later steps may fault. Then timings: the whole-model checks at the
            // end of GpuChecks can leave the context faulted.
            var probe = backend.UsesWgmma ? GpuChecks.WgmmaLayoutProbe(backend, context.Out).ToArray() : [];
            var results = GemmBench.Run(backend, context.Out, count, extra);
            var checks = probe.Concat(GpuChecks.Run(backend, context.Out)).ToArray();
            GemmBench.WriteJson(jsonPath, backend.DeviceName, results, checks);
            return checks.All(c => c.Passed) ? ExitCodes.Success : ExitCodes.Internal;
        });
        return command;
    }

    /// <summary>The CUDA device chosen; on a machine without one, says so for this command (no other device will do).</summary>
    private static Backend CreateCuda(DeviceChoice choice)
    {
        try
        {
            return Backend.Create(choice with { Kind = DeviceKind.Cuda });
        }
        catch (DeviceUnavailableException e) when (e.CudaDevices == 0)
        {
            throw new UserInputException("bench-gemm checks and times the CUDA GEMMs against cuBLAS: no CUDA device found " +
                                         "(it needs an NVIDIA GPU and its driver)");
        }
    }
}
