using Spectre.Console;

namespace SmoothCache.Cli.Output;

/// <summary>Shows progress of a long job: a live bar on a terminal, nothing when stderr is redirected.</summary>
public static class Progress
{
    public static T Run<T>(CliContext context, string title, int total, Func<Action<int>, T> work)
    {
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
}
