using SmoothCache.Cli.Evaluation;

namespace SmoothCache.Tests.Evaluation;

public class EvalTableTests
{
    [Fact]
    public void ToMarkdown_PadsColumnsAndEscapesPipes()
    {
        var table = new EvalTable("schedule", "PSNR");
        table.AddRow("none", EvalTable.Number(double.PositiveInfinity));
        table.AddRow("a|b", EvalTable.Number(31.4159, "F2"));

        Assert.Equal(
            "| schedule | PSNR  |\n" +
            "| -------- | ----- |\n" +
            "| none     | inf   |\n" +
            "| a\\|b     | 31.42 |\n",
            table.ToMarkdown());
    }

    [Fact]
    public void ToCsv_QuotesPerRfc4180()
    {
        var table = new EvalTable("name", "note");
        table.AddRow("a,b", "say \"hi\"");
        table.AddRow("plain", "two\nlines");

        Assert.Equal("name,note\r\n\"a,b\",\"say \"\"hi\"\"\"\r\nplain,\"two\nlines\"\r\n", table.ToCsv());
    }

    [Fact]
    public void Number_PrintsNonFiniteValuesByName()
    {
        Assert.Equal("-inf", EvalTable.Number(double.NegativeInfinity));
        Assert.Equal("nan", EvalTable.Number(double.NaN));
        Assert.Equal("0.125", EvalTable.Number(0.125));
    }

    [Fact]
    public void AddRow_NamesTheColumnsWhenTheCountIsWrong()
    {
        var table = new EvalTable("a", "b");

        var error = Assert.Throws<ArgumentException>(() => table.AddRow("1"));
        Assert.Contains("expected 2 (a, b)", error.Message);
    }

    [Fact]
    public void WriteCsvAndMarkdown_WriteTheRenderedTextAndLeaveNoTempFile()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"evaltable-{Guid.NewGuid():N}");
        var table = new EvalTable("x");
        table.AddRow("1");
        try
        {
            table.WriteCsv(Path.Combine(folder, "t.csv"));
            table.WriteMarkdown(Path.Combine(folder, "t.md"));

            Assert.Equal(table.ToCsv(), File.ReadAllText(Path.Combine(folder, "t.csv")));
            Assert.Equal(table.ToMarkdown(), File.ReadAllText(Path.Combine(folder, "t.md")));
            Assert.Equal(2, Directory.GetFiles(folder).Length);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
