using System.IO.Compression;
using SmoothCache.Model.Checkpoints;
using static SmoothCache.Tests.Model.Checkpoints.CheckpointTestFiles;

namespace SmoothCache.Tests.Model.Checkpoints;

public class PyTorchBinFileTests
{
    private static readonly (string name, int[] shape, float[] data)[] StateDict =
    [
        ("pos_embed.proj.weight", [6, 4, 2, 2], Values(96, seed: 20)),
        ("pos_embed.proj.bias", [6], Values(6, seed: 21)),
        ("scalar", [], [2.5f]),
        ("empty", [0, 4], []),
    ];

    [Theory]
    [InlineData(SaveDType.F32)]
    [InlineData(SaveDType.F16)]
    public void RoundTripMatchesTheSafetensorsWriter(SaveDType dtype)
    {
        using var temp = new TempFolder();
        string bin = temp.File("model.bin"), safetensors = temp.File("model.safetensors");
        PyTorchBinWriter.Write(bin, StateDict, dtype);
        SafetensorsWriter.Write(safetensors, StateDict, dtype);

        using var fromBin = PyTorchBinFile.Open(bin);
        using var fromSafetensors = SafetensorsFile.Open(safetensors);
        Assert.Equal(StateDict.Select(t => t.name), fromBin.Names);
        foreach (var (name, shape, data) in StateDict)
        {
            Assert.Equal(shape, fromBin.Describe(name).Shape);
            Assert.Equal(dtype.ToString(), fromBin.Describe(name).DType);
            float[] values = fromBin.ReadFloat32(name, shape);
            Assert.Equal(fromSafetensors.ReadFloat32(name, shape), values);
            Assert.Equal(dtype == SaveDType.F32 ? data : data.Select(v => (float)(Half)v), values);
        }
        Assert.Equal([bin, safetensors], Directory.GetFiles(temp.Path).Order());
    }

    [Fact]
    public void FindsTheArchiveFolderWhateverItsName()
    {
        using var temp = new TempFolder();
        string path = temp.File("weights.pt");
        PyTorchBinWriter.Write(path, StateDict, archiveName: "diffusion_pytorch_model");
        using (var zip = ZipFile.OpenRead(path))
            Assert.NotNull(zip.GetEntry("diffusion_pytorch_model/data.pkl"));
        using var file = PyTorchBinFile.Open(path);
        Assert.Equal(StateDict[1].data, file.ReadFloat32("pos_embed.proj.bias", 6));
    }

    [Fact]
    public void MissingTensorAndWrongShapeNameFileAndTensor()
    {
        using var temp = new TempFolder();
        string path = temp.File("model.bin");
        PyTorchBinWriter.Write(path, StateDict);
        using var file = PyTorchBinFile.Open(path);
        AssertNames(Assert.Throws<MissingTensorException>(() => file.ReadFloat32("absent")), path, "absent");
        var shape = Assert.Throws<TensorShapeException>(() => file.ReadFloat32("pos_embed.proj.bias", 7));
        AssertNames(shape, path, "pos_embed.proj.bias");
        Assert.Contains("[7]", shape.Message);
    }

    /// <summary>
    /// A state-dict pickle written by CPython's own pickler (protocol 2, as torch.save uses) with
    /// stand-in torch classes: memo puts/gets, a storage shared by two views (layer.bias starts at
    /// element 6), a half storage and the `_metadata` attribute applied by BUILD.
    /// </summary>
    private const string CPythonStateDictPickle =
        "gAJjY29sbGVjdGlvbnMKT3JkZXJlZERpY3QKcQApUnEBKFgMAAAAbGF5ZXIud2VpZ2h0cQJjdG9yY2guX3V0aWxzCl9yZWJ1aWxkX3RlbnNvcl92MgpxAygo" +
        "WAcAAABzdG9yYWdlcQRjdG9yY2gKRmxvYXRTdG9yYWdlCnEFWAEAAAAwcQZYAwAAAGNwdXEHSwp0cQhRSwBLAksDhnEJSwNLAYZxColoAClScQt0cQxScQ1Y" +
        "CgAAAGxheWVyLmJpYXNxDmgDKChoBGgFaAZoB0sKdHEPUUsGSwSFcRBLAYVxEYloAClScRJ0cRNScRRYBAAAAGhhbGZxFWgDKChoBGN0b3JjaApIYWxmU3Rv" +
        "cmFnZQpxFlgBAAAAMXEXaAdLAnRxGFFLAEsChXEZaBGJaAApUnEadHEbUnEcdX1xHVgJAAAAX21ldGFkYXRhcR5oAClScR9YBQAAAGxheWVycSB9cSFYBwAA" +
        "AHZlcnNpb25xIksBc3NzYi4=";

    [Fact]
    public void ReadsAPickleWrittenByCPython()
    {
        using var temp = new TempFolder();
        string path = temp.File("cpython.bin");
        float[] storage = Values(10, seed: 32);
        PyTorchBinWriter.WriteArchive(path, "archive", Convert.FromBase64String(CPythonStateDictPickle),
            [("0", FloatBytes(storage)), ("1", UInt16Bytes(0x3C00, 0xB800))]);
        using var file = PyTorchBinFile.Open(path);
        Assert.Equal(["layer.weight", "layer.bias", "half"], file.Names);
        Assert.Equal(storage[..6], file.ReadFloat32("layer.weight", 2, 3));
        Assert.Equal(storage[6..], file.ReadFloat32("layer.bias", 4));
        Assert.Equal("F16", file.Describe("half").DType);
        Assert.Equal([1f, -0.5f], file.ReadFloat32("half", 2));
    }

    [Fact]
    public void ViewsIntoASharedStorageReadFromTheirOffset()
    {
        using var temp = new TempFolder();
        string path = temp.File("shared.bin");
        float[] storage = Values(10, seed: 30);
        byte[] pickle = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .String("head").RebuildTensor("FloatStorage", "0", 10, 0, [2, 2], [2, 1])
            .String("tail").RebuildTensor("FloatStorage", "0", 10, 4, [3, 2], [2, 1])
            .SetItems().Stop();
        PyTorchBinWriter.WriteArchive(path, "archive", pickle, [("0", FloatBytes(storage))]);
        using var file = PyTorchBinFile.Open(path);
        Assert.Equal(storage[..4], file.ReadFloat32("head", 2, 2));
        Assert.Equal(storage[4..], file.ReadFloat32("tail", 3, 2));
    }

    [Fact]
    public void BFloat16AndFloat64StoragesAndNestedDictsAreRead()
    {
        using var temp = new TempFolder();
        string path = temp.File("mixed.pt");
        byte[] pickle = new PickleBuilder().Proto().EmptyDict().Mark()
            .String("ema").Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
                .String("b").RebuildTensor("BFloat16Storage", "0", 3, 0, [3], [1])
                .String("d").RebuildTensor("DoubleStorage", "1", 2, 0, [2], [1])
            .SetItems()
            .String("epoch").Int(7)
            .SetItems().Stop();
        PyTorchBinWriter.WriteArchive(path, "archive", pickle,
            [("0", UInt16Bytes(0x3F80, 0xC040, 0x4049)), ("1", DoubleBytes(0.1, -2.0))]);
        using var file = PyTorchBinFile.Open(path);
        Assert.Equal(["ema.b", "ema.d"], file.Names);
        Assert.Equal("BF16", file.Describe("ema.b").DType);
        Assert.Equal([1f, -3f, 3.140625f], file.ReadFloat32("ema.b"));
        Assert.Equal("F64", file.Describe("ema.d").DType);
        Assert.Equal([0.1f, -2f], file.ReadFloat32("ema.d"));
    }

    [Fact]
    public void NonContiguousStridesAreRefused()
    {
        using var temp = new TempFolder();
        string path = temp.File("transposed.bin");
        byte[] pickle = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .String("w.T").RebuildTensor("FloatStorage", "0", 6, 0, [3, 2], [1, 3])
            .SetItems().Stop();
        PyTorchBinWriter.WriteArchive(path, "archive", pickle, [("0", FloatBytes(Values(6, seed: 31)))]);
        var e = Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path));
        AssertNames(e, path, "w.T");
        Assert.Contains("contiguous", e.Message);
    }

    [Fact]
    public void TensorsOutsideTheirStorageAreRefused()
    {
        using var temp = new TempFolder();
        string path = temp.File("overrun.bin");
        byte[] pickle = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .String("w").RebuildTensor("FloatStorage", "0", 4, 2, [4], [1])
            .SetItems().Stop();
        PyTorchBinWriter.WriteArchive(path, "archive", pickle, [("0", FloatBytes(1, 2, 3, 4))]);
        AssertNames(Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path)), path, "w");
    }

    [Fact]
    public void MissingOrShortStorageFilesAreRefused()
    {
        using var temp = new TempFolder();
        string path = temp.File("storage.bin");
        byte[] pickle = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .String("w").RebuildTensor("FloatStorage", "0", 4, 0, [4], [1])
            .SetItems().Stop();
        PyTorchBinWriter.WriteArchive(path, "archive", pickle, []);
        var missing = Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path));
        AssertNames(missing, path, "w");
        Assert.Contains("archive/data/0", missing.Message);

        PyTorchBinWriter.WriteArchive(path, "archive", pickle, [("0", FloatBytes(1, 2, 3))]);
        AssertNames(Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path)), path, "w");
    }

    [Theory]
    [InlineData("os", "system", "unexpected global os.system")]
    [InlineData("builtins", "eval", "unexpected global builtins.eval")]
    [InlineData("__builtin__", "exec", "unexpected global __builtin__.exec")]
    [InlineData("torch", "IntStorage", "weights stored as torch.IntStorage, which is not supported (expected torch.BFloat16Storage, " +
                                       "torch.DoubleStorage, torch.FloatStorage, torch.HalfStorage)")]
    public void DisallowedGlobalsAreRefusedBeforeAnythingRuns(string module, string name, string expected)
    {
        using var temp = new TempFolder();
        string path = temp.File("malicious.bin");
        // The classic payload: os.system("echo pwned") via REDUCE, as the pickle's only object.
        byte[] pickle = new PickleBuilder().Proto().Global(module, name).Mark().String("echo pwned").Tuple().Reduce().Stop();
        PyTorchBinWriter.WriteArchive(path, "archive", pickle, []);
        var e = Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path));
        AssertNames(e, path);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void DisallowedGlobalHiddenInsideAStateDictIsRefused()
    {
        using var temp = new TempFolder();
        string path = temp.File("hidden.bin");
        byte[] pickle = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .String("w").RebuildTensor("FloatStorage", "0", 1, 0, [1], [1])
            .String("x").Global("subprocess", "Popen").Mark().String("ls").Tuple().Reduce()
            .SetItems().Stop();
        PyTorchBinWriter.WriteArchive(path, "archive", pickle, [("0", FloatBytes(1))]);
        var e = Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path));
        Assert.Contains("unexpected global subprocess.Popen", e.Message);
    }

    [Fact]
    public void StackGlobalsAreCheckedByTheirStringOperands()
    {
        using var temp = new TempFolder();
        string path = temp.File("proto4.bin");
        // Protocol 4 spelling: SHORT_BINUNICODE 'os', MEMOIZE, SHORT_BINUNICODE 'system', MEMOIZE, STACK_GLOBAL.
        byte[] stackGlobal = [0x80, 4, 0x8c, 2, .. "os"u8, 0x94, 0x8c, 6, .. "system"u8, 0x94, 0x93, (byte)')', (byte)'R', (byte)'.'];
        PyTorchBinWriter.WriteArchive(path, "archive", stackGlobal, []);
        Assert.Contains("unexpected global os.system",
            Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path)).Message);

        // Names fetched back from the memo are followed too.
        byte[] fromMemo = [0x80, 4, 0x8c, 2, .. "os"u8, 0x94, 0x8c, 6, .. "system"u8, 0x94, (byte)'0', (byte)'0',
            (byte)'h', 0, (byte)'h', 1, 0x93, (byte)')', (byte)'R', (byte)'.'];
        PyTorchBinWriter.WriteArchive(path, "archive", fromMemo, []);
        Assert.Contains("unexpected global os.system",
            Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path)).Message);

        // Names the scanner cannot follow (here built by other opcodes) are refused outright.
        byte[] computed = [0x80, 4, (byte)'N', (byte)'N', 0x93, (byte)'.'];
        PyTorchBinWriter.WriteArchive(path, "archive", computed, []);
        Assert.Contains("STACK_GLOBAL",
            Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path)).Message);
    }

    [Fact]
    public void TruncatedPickleIsCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("short-pickle.bin");
        byte[] pickle = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .String("w").RebuildTensor("FloatStorage", "0", 1, 0, [1], [1]).SetItems().Stop();
        PyTorchBinWriter.WriteArchive(path, "archive", pickle[..^10], [("0", FloatBytes(1))]);
        AssertNames(Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path)), path);
    }

    [Fact]
    public void PickleOfSomethingOtherThanADictIsCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("list.bin");
        PyTorchBinWriter.WriteArchive(path, "archive", new PickleBuilder().Proto().Int(3).Stop(), []);
        var e = Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path));
        Assert.Contains("expected a state dict", e.Message);
    }

    [Fact]
    public void CorruptOrForeignZipsAreRefused()
    {
        using var temp = new TempFolder();
        string garbage = temp.File("garbage.bin");
        File.WriteAllBytes(garbage, Values(64, seed: 40).SelectMany(BitConverter.GetBytes).ToArray());
        AssertNames(Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(garbage)), garbage);

        string truncated = temp.File("truncated.bin");
        PyTorchBinWriter.Write(truncated, StateDict);
        using (var stream = new FileStream(truncated, FileMode.Open)) stream.SetLength(stream.Length / 2);
        AssertNames(Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(truncated)), truncated);

        string foreign = temp.File("foreign.bin");
        using (var zip = ZipFile.Open(foreign, ZipArchiveMode.Create)) zip.CreateEntry("readme.txt");
        var e = Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(foreign));
        Assert.Contains("data.pkl", e.Message);
    }

    /// <summary>A pickle can make a dict hold itself, or share one dict under two keys at every level (2^depth paths to
    /// walk from a few hundred bytes): refused, not a stack overflow or an endless walk.</summary>
    [Theory]
    [InlineData(0, "contains itself")]
    [InlineData(40, "nests deeper than 32")]
    [InlineData(24, "more than 1048576 entries")]
    public void SelfReferencingOrExplodingDictsAreRefused(int sharedLevels, string problem)
    {
        using var temp = new TempFolder();
        string path = temp.File("hostile.bin");
        PyTorchBinWriter.WriteArchive(path, "archive", sharedLevels == 0 ? SelfHoldingDict() : SharedLevels(sharedLevels), []);
        var e = Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path));
        Assert.Contains(problem, e.Message);
    }

    /// <summary>d = {}; d["a"] = d (PROTO 2, EMPTY_DICT, BINPUT 0, BINUNICODE "a", BINGET 0, SETITEM, STOP).</summary>
    private static byte[] SelfHoldingDict() => [0x80, 2, (byte)'}', (byte)'q', 0, (byte)'X', 1, 0, 0, 0, (byte)'a', (byte)'h', 0, (byte)'s', (byte)'.'];

    /// <summary>d = {} then, levels times, d = {"a": d, "b": d}: each level memoised once and fetched twice.</summary>
    private static byte[] SharedLevels(int levels)
    {
        var bytes = new List<byte> { 0x80, 2, (byte)'}', (byte)'q', 0 }; // the innermost dict, memo 0
        for (int i = 1; i <= levels; i++)
        {
            bytes.AddRange([(byte)'}', (byte)'(']);                                       // EMPTY_DICT, MARK
            foreach (char key in "ab") bytes.AddRange([(byte)'X', 1, 0, 0, 0, (byte)key, (byte)'h', (byte)(i - 1)]);
            bytes.AddRange([(byte)'u', (byte)'q', (byte)i]);                              // SETITEMS, BINPUT i
        }
        bytes.Add((byte)'.');
        return bytes.ToArray();
    }

    [Fact]
    public void UnpicklerFaultsOnMalformedOpcodesAreCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("build-none.bin");
        PyTorchBinWriter.WriteArchive(path, "archive", [0x80, 2, (byte)'}', (byte)'N', (byte)'b', (byte)'.'], []); // BUILD with None
        AssertNames(Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path)), path);
    }

    /// <summary>A zip directory claiming ~4 GB for a deflated data.pkl of a few bytes: refused before anything is allocated.</summary>
    [Fact]
    public void AnEntryDeclaringMoreThanItCanHoldIsRefused()
    {
        using var temp = new TempFolder();
        string path = temp.File("lying.bin");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            using var entry = zip.CreateEntry("archive/data.pkl", CompressionLevel.Optimal).Open();
            entry.Write(new PickleBuilder().Proto().Int(3).Stop());
        }
        var bytes = File.ReadAllBytes(path);
        PatchUncompressedSizes(bytes, 0xFFFFFFFEu);
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CorruptCheckpointException>(() => PyTorchBinFile.Open(path));
        Assert.Contains("declares 4294967294 bytes", e.Message);
    }

    /// <summary>Sets the uncompressed size in every local header (offset 22) and central directory record (offset 24).</summary>
    private static void PatchUncompressedSizes(byte[] zip, uint size)
    {
        for (int i = 0; i + 28 <= zip.Length; i++)
        {
            uint signature = BitConverter.ToUInt32(zip, i);
            int at = signature == 0x04034b50 ? i + 22 : signature == 0x02014b50 ? i + 24 : -1;
            if (at >= 0) BitConverter.GetBytes(size).CopyTo(zip, at);
        }
    }

    [Fact]
    public void MissingFileIsNotFound()
    {
        using var temp = new TempFolder();
        string path = temp.File("absent.bin");
        AssertNames(Assert.Throws<CheckpointNotFoundException>(() => PyTorchBinFile.Open(path)), path);
    }
}
