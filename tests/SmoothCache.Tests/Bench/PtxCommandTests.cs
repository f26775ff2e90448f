using SmoothCache.Cli;
using SmoothCache.Tests.Cli;

namespace SmoothCache.Tests.Bench;

public class PtxCommandTests
{
    [Fact]
    public void WritesThePtxOfEveryCudaKernelWithoutADevice()
    {
        using var folder = new CliRunner.TempFolder();
        var result = CliRunner.Run("ptx", "--out", folder.Path);
        Assert.True(result.ExitCode == ExitCodes.Success, result.Error);
        var files = Directory.GetFiles(folder.Path, "*.ptx").Select(Path.GetFileNameWithoutExtension).ToArray();
        // The kernels a forward launches on CUDA (found by running one with the GPU kernel set), and the
        // tensor-core GEMM, which the CPU only emulates: its PTX instances are added by name.
        foreach (var kernel in new[]
        {
            "Sgemm.Kernel[GeluTanhEpilogue]", "FlashAttention.Kernel", "LayerNormModulateRow.Kernel[HalfConversion.CudaRounding,Floats]",
            "LayerNormModulateRow.Kernel[HalfConversion.CudaRounding,Halves]",
            "LinearSkinny.Kernel[SiluEpilogue]", "ElementLauncher.Kernel[Unpatchify.Args]",
            "LinearTensorCore.Kernel[IdentityEpilogue,LinearTensorCore.Ptx]",
            "LinearWgmma.Kernel[GeluTanhEpilogue,LinearWgmma.Ptx,LinearWgmma.TwoWarpGroups]",
            "LinearWgmmaTma.Kernel[GeluTanhEpilogue,LinearWgmma.Ptx,LinearWgmmaTma.Tma,LinearWgmmaTma.Swizzled64,LinearWgmma.OneWarpGroup,LinearWgmmaTma.BarrierRing]",
            "LinearWgmmaTma.Kernel[IdentityEpilogue,LinearWgmma.Ptx,LinearWgmmaTma.Tma,LinearWgmmaTma.Swizzled64,LinearWgmma.OneWarpGroup,LinearWgmmaTma.ReleasedRing]",
        })
            Assert.Contains(kernel, files);
        Assert.DoesNotContain(files, f => f!.Contains("Emulated") || f.Contains("PortableRounding"));
        foreach (var file in Directory.GetFiles(folder.Path, "*.ptx"))
        {
            string ptx = File.ReadAllText(file);
            Assert.Contains(".entry", ptx);
            // As a Hopper GPU loads them: the wgmma GEMMs for sm_90a (wgmma exists nowhere else), every other kernel for
            // sm_90 (griddepcontrol), each waiting for the grids before it.
            Assert.Contains(Path.GetFileName(file).StartsWith("LinearWgmma") ? ".target sm_90a\n" : ".target sm_90\n", ptx);
            Assert.Contains("griddepcontrol.wait;", ptx);
        }
        Assert.Equal(files.Length, result.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void RequiresAnOutputFolder()
    {
        var result = CliRunner.Run("ptx");
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains("--out", result.Error);
    }

    [Fact]
    public void AFileWhereTheOutputFolderBelongsIsBadInput()
    {
        using var temp = new CliRunner.TempFolder();
        string file = temp.File("afile");
        File.WriteAllText(file, "");
        var result = CliRunner.Run("ptx", "--out", file);
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains($"--out: '{file}' is a file: expected a folder", result.Error);
    }
}
