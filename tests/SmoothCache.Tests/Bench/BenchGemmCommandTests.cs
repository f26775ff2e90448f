using SmoothCache.Cli;
using SmoothCache.Tests.Cli;

namespace SmoothCache.Tests.Bench;

/// <summary>bench-gemm needs CUDA to time anything, but its options are checked before a device is opened.</summary>
public class BenchGemmCommandTests
{
    [Theory]
    [InlineData("--splits", "9")]
    [InlineData("--splits", "0")]
    [InlineData("--iterations", "0")]
    public void RejectsBadCountsBeforeLookingForADevice(string option, string value)
    {
        var result = CliRunner.Run("bench-gemm", option, value);
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains(option, result.Error);
    }

    [Theory]
    [InlineData("cpu", "--device cpu: bench-gemm checks and times the CUDA GEMMs")]
    [InlineData("cuda:z", "--device: device 'cuda:z': expected cuda:N")]
    public void RefusesADeviceThatIsNotACudaGpu(string device, string expected)
    {
        var result = CliRunner.Run("bench-gemm", "--device", device);
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains(expected, Assert.Single(result.ErrorLines));
    }

    [Fact]
    public void RefusesClusterWithoutTma()
    {
        var result = CliRunner.Run("bench-gemm", "--cluster");
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains("--cluster goes with --tma", result.Error);
    }

    [Fact]
    public void RefusesTmaOutsideTheWgmmaKernelSetsBeforeLookingForADevice()
    {
        string? saved = Environment.GetEnvironmentVariable("SMOOTHCACHE_KERNELS");
        try
        {
            // The mma.sync kernels forced: nothing for --tma to time.
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", "tensorcores");
            var result = CliRunner.Run("bench-gemm", "--tma");
            Assert.Equal(ExitCodes.BadInput, result.ExitCode);
            Assert.Contains("SMOOTHCACHE_KERNELS", result.Error);
        }
        finally
        {
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", saved);
        }
    }
}
