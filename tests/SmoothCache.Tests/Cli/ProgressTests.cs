using SmoothCache.Cli;
using SmoothCache.Cli.Output;

namespace SmoothCache.Tests.Cli;

public class ProgressTests
{
    [Fact]
    public void ALoggedJobWritesALineAtEachTenth()
    {
        var log = new StringWriter();
        int result = Progress.RunLogged(log, "generate 2 images", 50, report =>
        {
            for (int step = 1; step <= 50; step++) report(step);
            return 7;
        });
        Assert.Equal(7, result);
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(10, lines.Length);
        Assert.StartsWith("generate 2 images: 5/50 (10%), ", lines[0]);
        Assert.StartsWith("generate 2 images: 50/50 (100%), ", lines[^1]);
    }

    [Fact]
    public void AShortLoggedJobWritesALineAStep()
    {
        var log = new StringWriter();
        Progress.RunLogged(log, "calibrate", 3, report =>
        {
            for (int step = 1; step <= 3; step++) report(step);
            return 0;
        });
        Assert.Equal(["calibrate: 1/3 (33%)", "calibrate: 2/3 (66%)", "calibrate: 3/3 (100%)"],
            log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l[..l.LastIndexOf(',')]));
    }

    [Fact]
    public void ACapturedStderrGetsNoProgress()
    {
        var error = new StringWriter();
        Progress.Run(new CliContext(new StringWriter(), error), "generate", 4, report =>
        {
            for (int step = 1; step <= 4; step++) report(step);
            return 0;
        });
        Assert.Equal("", error.ToString());
    }
}
