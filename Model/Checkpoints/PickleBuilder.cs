using System.Buffers.Binary;
using System.Text;

namespace SmoothCache.Model.Checkpoints;

/// <summary>Emits pickle protocol 2 opcodes, as torch.save writes them, for the checkpoint writer and hand-made test pickles.</summary>
internal sealed class PickleBuilder
{
    private readonly MemoryStream _bytes = new();

    public PickleBuilder Proto() => Op(0x80).Op(2);
    public PickleBuilder Mark() => Op((byte)'(');
    public PickleBuilder Tuple() => Op((byte)'t');
    public PickleBuilder EmptyTuple() => Op((byte)')');
    public PickleBuilder EmptyDict() => Op((byte)'}');
    public PickleBuilder Reduce() => Op((byte)'R');
    public PickleBuilder BinPersId() => Op((byte)'Q');
    public PickleBuilder SetItems() => Op((byte)'u');
    public PickleBuilder False() => Op(0x89);

    public PickleBuilder Global(string module, string name)
    {
        Op((byte)'c');
        _bytes.Write(Encoding.UTF8.GetBytes($"{module}\n{name}\n"));
        return this;
    }

    /// <summary>BINUNICODE: how Python 3 pickles a str under protocol 2.</summary>
    public PickleBuilder String(string value)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(value);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, utf8.Length);
        Op((byte)'X');
        _bytes.Write(length);
        _bytes.Write(utf8);
        return this;
    }

    /// <summary>BININT for values that fit a signed 32-bit integer, LONG1 (little-endian two's complement) beyond.</summary>
    public PickleBuilder Int(long value)
    {
        if (value is >= int.MinValue and <= int.MaxValue)
        {
            Span<byte> bytes = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(bytes, (int)value);
            Op((byte)'J');
            _bytes.Write(bytes);
            return this;
        }
        Span<byte> wide = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(wide, value);
        Op(0x8a).Op(8);
        _bytes.Write(wide);
        return this;
    }

    public PickleBuilder IntTuple(IEnumerable<long> values)
    {
        Mark();
        foreach (long value in values) Int(value);
        return Tuple();
    }

    /// <summary>
    /// A tensor as torch pickles it: _rebuild_tensor_v2(persistent storage, offset, size, stride,
    /// requires_grad=False, backward_hooks=OrderedDict()).
    /// </summary>
    public PickleBuilder RebuildTensor(string storageClass, string storageKey, long storageElements, long offset, int[] shape, long[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        Mark().String("storage").Global("torch", storageClass).String(storageKey).String("cpu").Int(storageElements).Tuple().BinPersId();
        Int(offset).IntTuple(shape.Select(s => (long)s)).IntTuple(stride).False();
        Global("collections", "OrderedDict").EmptyTuple().Reduce();
        return Tuple().Reduce();
    }

    /// <summary>Ends the pickle with STOP and returns its bytes.</summary>
    public byte[] Stop()
    {
        Op((byte)'.');
        return _bytes.ToArray();
    }

    private PickleBuilder Op(byte opcode)
    {
        _bytes.WriteByte(opcode);
        return this;
    }
}
