import asyncio, sys, abc, collections
sys.path.insert(0, "/work/wt/i13-perf/benchmarks")
import worker as W
cnt = collections.Counter()
orig = abc.ABCMeta.__subclasscheck__
def sc(cls, sub):
    cnt[(cls.__name__, getattr(sub, "__name__", str(sub)))] += 1
    return orig(cls, sub)
async def main(url):
    w = await W.make_worker("sdk", url)
    for p in ("on.hand.publish", "on.inst.publish"):
        await w.measure(p, 500)
        abc.ABCMeta.__subclasscheck__ = sc
        cnt.clear()
        await w.measure(p, 1000)
        abc.ABCMeta.__subclasscheck__ = orig
        print(p, cnt.most_common(4))
    await w.close()
asyncio.run(main(sys.argv[1]))
