using System.Diagnostics;
using Spectre.Console;

namespace SmoothCache.Cli.Output;

/// <summary>Shows progress of a long job: a live bar on a terminal, a line at every tenth of the job where stderr is
/// redirected to a log (<see cref="CliContext.Logged"/>), nothing where a program captures it.</summary>
public static class Progress
{
    public static T Run<T>(CliContext context, string title, int total, Func<Action<int>, T> work)
    {
        if (context.Logged) return RunLogged(context.Error, title, total, work);
        if (!context.Interactive) return work(_ => { });
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: total);
                return work(done => task.Value = done);
            });
    }

    /// <summary>One line each time the work passes a tenth of <paramref name="total"/> (fewer for fewer steps).</summary>
    public static T RunLogged<T>(TextWriter log, string title, int total, Func<Action<int>, T> work)
    {
        var timer = Stopwatch.StartNew();
        int tenthsShown = 0;
        return work(done =>
        {
            int tenths = total <= 0 ? 10 : (int)(10L * done / total);
            if (tenths <= tenthsShown) return;
            tenthsShown = tenths;
            log.WriteLine($"{title}: {done}/{total} ({100L * done / Math.Max(1, total)}%), {timer.Elapsed.TotalSeconds:F1} s");
        });
    }
}
