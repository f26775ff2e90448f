using System.Globalization;
using System.Text;
using SmoothCache.Model;

namespace SmoothCache.Cli.Evaluation;

/// <summary>A table of named columns and string cells, rendered as Markdown (for reading) or CSV
/// (RFC 4180, for tools) and written atomically.</summary>
public sealed class EvalTable
{
    private readonly List<string[]> _rows = [];

    public EvalTable(params string[] columns)
    {
        if (columns.Length == 0)
            throw new ArgumentException("a table needs at least one column", nameof(columns));
        Columns = columns.ToArray();
    }

    public IReadOnlyList<string> Columns { get; }

    public void AddRow(params string[] cells)
    {
        if (cells.Length != Columns.Count)
            throw new ArgumentException(
                $"row has {cells.Length} cells; expected {Columns.Count} ({string.Join(", ", Columns)})", nameof(cells));
        _rows.Add(cells.ToArray());
    }

    /// <summary>Invariant-culture number with <paramref name="format"/> (e.g. "F2", "G4");
    /// infinities print as "inf" / "-inf" and NaN as "nan".</summary>
    public static string Number(double value, string format = "G6") => value switch
    {
        double.PositiveInfinity => "inf",
        double.NegativeInfinity => "-inf",
        double.NaN => "nan",
        _ => value.ToString(format, CultureInfo.InvariantCulture),
    };

    /// <summary>GitHub-flavoured Markdown, columns padded to equal width; '|' in cells is escaped
    /// and line breaks become spaces.</summary>
    public string ToMarkdown()
    {
        var header = Columns.Select(MarkdownCell).ToArray();
        var body = _rows.Select(r => r.Select(MarkdownCell).ToArray()).ToList();
        int[] widths = header.Select((h, c) => Math.Max(3, body.Select(r => r[c].Length).Prepend(h.Length).Max())).ToArray();
        var text = new StringBuilder();
        AppendMarkdownLine(text, header, widths);
        AppendMarkdownLine(text, widths.Select(w => new string('-', w)).ToArray(), widths);
        foreach (string[] row in body) AppendMarkdownLine(text, row, widths);
        return text.ToString();
    }

    /// <summary>CSV per RFC 4180: CRLF line ends; fields holding a comma, double quote, CR or LF are
    /// enclosed in double quotes with inner quotes doubled.</summary>
    public string ToCsv()
    {
        var text = new StringBuilder();
        foreach (IReadOnlyList<string> line in _rows.Prepend(Columns.ToArray()))
            text.Append(string.Join(',', line.Select(CsvField))).Append("\r\n");
        return text.ToString();
    }

    public void WriteMarkdown(string path) => AtomicFile.WriteAllText(path, ToMarkdown());

    public void WriteCsv(string path) => AtomicFile.WriteAllText(path, ToCsv());

    private static string MarkdownCell(string cell) =>
        cell.Replace("|", "\\|").Replace("\r\n", " ").Replace('\n', ' ').Replace('\r', ' ');

    private static void AppendMarkdownLine(StringBuilder text, string[] cells, int[] widths)
    {
        text.Append('|');
        for (int c = 0; c < cells.Length; c++)
            text.Append(' ').Append(cells[c].PadRight(widths[c])).Append(" |");
        text.Append('\n');
    }

    private static string CsvField(string field) =>
        field.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? $"\"{field.Replace("\"", "\"\"")}\"" : field;
}
