using SmoothCache.Model;

namespace SmoothCache.Tests.Model;

public class PathProblemsTests
{
    [Fact]
    public void AFolderWhereAFileBelongsTheReverseAndLinksToNothingAreSaidSo()
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
            string link = Path.Combine(folder.FullName, "weights.safetensors"), linkedFolder = Path.Combine(folder.FullName, "linked");
            File.CreateSymbolicLink(link, missing);
            Assert.Equal($"is a link to {missing}, which does not exist", PathProblems.ForFile(link));
            Assert.Equal($"is a link to {missing}, which does not exist", PathProblems.ForFolder(link));
            Directory.CreateSymbolicLink(linkedFolder, folder.FullName);
            Assert.Null(PathProblems.ForFolder(linkedFolder));
            Assert.Equal("is a folder: expected a file", PathProblems.ForFile(linkedFolder));
            File.Delete(link);
            File.CreateSymbolicLink(link, file);
            Assert.Null(PathProblems.ForFile(link));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }
}
