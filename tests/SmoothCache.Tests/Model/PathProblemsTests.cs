using SmoothCache.Model;

namespace SmoothCache.Tests.Model;

public class PathProblemsTests
{
    [Fact]
    public void AFolderWhereAFileBelongsAndTheReverseAreSaidSo()
    {
        var folder = Directory.CreateTempSubdirectory("path-problems-");
        try
        {
            string file = Path.Combine(folder.FullName, "a.json"), missing = Path.Combine(folder.FullName, "b.json");
            File.WriteAllText(file, "{}");
            Assert.Null(PathProblems.ForFile(file));
            Assert.Null(PathProblems.ForFolder(folder.FullName));
            Assert.Equal("is a folder: expected a file", PathProblems.ForFile(folder.FullName));
            Assert.Equal("is a file: expected a folder", PathProblems.ForFolder(file));
            Assert.Equal("file not found", PathProblems.ForFile(missing));
            Assert.Equal("folder not found", PathProblems.ForFolder(missing));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }
}
