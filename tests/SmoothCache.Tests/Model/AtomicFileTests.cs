using SmoothCache.Model;

namespace SmoothCache.Tests.Model;

public sealed class AtomicFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("atomic-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A 250-byte name is legal; the temporary file beside it, named after it in full plus a suffix, was not.</summary>
    [Fact]
    public void ANameNearTheFileSystemsLimitIsWritten()
    {
        string path = Path.Combine(_dir, new string('n', 245) + ".json");
        AtomicFile.WriteAllText(path, "{}");
        Assert.Equal([path], Directory.GetFiles(_dir));
        Assert.Equal("{}", File.ReadAllText(path));
    }

    [Fact]
    public void AFailedWriteLeavesNeitherTheTargetNorATemporaryFile()
    {
        string path = Path.Combine(_dir, "out.bin");
        Assert.Throws<InvalidOperationException>(() => AtomicFile.WriteStream(path, stream =>
        {
            stream.Write(new byte[100]);
            throw new InvalidOperationException("encoder failed");
        }));
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void ALinkIsWrittenThroughAndStaysALink()
    {
        string target = Path.Combine(_dir, "target.json"), link = Path.Combine(_dir, "link.json");
        File.WriteAllText(target, "old");
        File.CreateSymbolicLink(link, target);
        AtomicFile.WriteAllText(link, "new");
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.Equal("new", File.ReadAllText(target));
    }

    [Fact]
    public void TemporaryNamesAreHiddenBesideTheTargetAndDistinct()
    {
        string path = Path.Combine(_dir, "model");
        string a = AtomicFile.TemporaryBeside(path), b = AtomicFile.TemporaryBeside(path + Path.DirectorySeparatorChar);
        Assert.Equal(_dir, Path.GetDirectoryName(a));
        Assert.Equal(_dir, Path.GetDirectoryName(b));
        Assert.StartsWith(".model.", Path.GetFileName(a));
        Assert.NotEqual(a, b);
    }
}
