package report

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/shopledger/shopledger/loadtest/internal/load"
)

// The plots, drawn with gonum/plot: throughput, latency and lag over the
// run's seconds, a dashed line where the load ended.

// series is one line of a plot.
type series struct {
	name   string
	points plotter.XYs
	dashed bool
	dots   bool // points, not a line (one per probe)
}

// column takes one column of the run's series, skipping what could not be
// read (and, for a log scale, what is not positive).
func column(ss []load.Second, get func(load.Second) float64, positive bool) plotter.XYs {
	var xy plotter.XYs
	for _, s := range ss {
		v := get(s)
		if math.IsNaN(v) || math.IsInf(v, 0) || (positive && v <= 0) {
			continue
		}
		xy = append(xy, plotter.XY{X: float64(s.T), Y: v})
	}
	return xy
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
}

// draw saves a plot of lines to path.
func drawPlot(path, title, ylabel string, logY bool, loadEnd float64, lines []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since the start"
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for i, l := range lines {
		if len(l.points) == 0 {
			continue
		}
		c := palette[i%len(palette)]
		for _, pt := range l.points {
			ymin, ymax = min(ymin, pt.Y), max(ymax, pt.Y)
		}
		if l.dots {
			sc, err := plotter.NewScatter(l.points)
			if err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
			sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = c, vg.Points(1.5), draw.CircleGlyph{}
			p.Add(sc)
			p.Legend.Add(l.name, sc)
			continue
		}
		ln, err := plotter.NewLine(l.points)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		ln.Color, ln.Width = c, vg.Points(1.2)
		if l.dashed {
			ln.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(ln)
		p.Legend.Add(l.name, ln)
	}
	if math.IsInf(ymin, 1) { // nothing to draw: an empty frame
		ymin, ymax = 1, 10
	}
	if logY { // room above the points for the legend
		p.Y.Max = ymax * 30
	} else {
		ymin = min(ymin, 0)
		p.Y.Max = ymax * 1.5
	}
	end, err := plotter.NewLine(plotter.XYs{{X: loadEnd, Y: ymin}, {X: loadEnd, Y: ymax}})
	if err != nil {
		return err
	}
	end.Color, end.Dashes = color.Gray{Y: 0x80}, []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(end)
	p.Legend.Add("end of the load", end)
	return p.Save(24*vg.Centimeter, 12*vg.Centimeter, path)
}

func writePlots(dir string, res *load.Result) error {
	ss := res.Series
	loadEnd := res.LoadEnd.Sub(res.Start).Seconds()
	err := drawPlot(filepath.Join(dir, "throughput.png"), "Throughput", "per second", false, loadEnd, []series{
		{name: "offered events", points: column(ss, func(s load.Second) float64 { return float64(s.Offered) }, false), dashed: true},
		{name: "events registered done", points: column(ss, func(s load.Second) float64 { return float64(s.Written) }, false)},
		{name: "events in the shards", points: column(ss, func(s load.Second) float64 { return float64(s.Sent) }, false)},
		{name: "CDC rows published", points: column(ss, func(s load.Second) float64 { return s.CDCRows }, false)},
		{name: "balance changes applied", points: column(ss, func(s load.Second) float64 { return s.BalanceApplied }, false)},
		{name: "cache changes applied", points: column(ss, func(s load.Second) float64 { return s.CacheApplied }, false)},
		{name: "REST reads answered", points: column(ss, func(s load.Second) float64 { return float64(s.Reads) }, false)},
	})
	if err != nil {
		return fmt.Errorf("throughput plot: %w", err)
	}
	var bal, cch plotter.XYs
	for _, p := range res.Probes {
		if !math.IsNaN(p.Balance) && p.Balance > 0 {
			bal = append(bal, plotter.XY{X: p.T, Y: p.Balance})
		}
		if !math.IsNaN(p.Cache) && p.Cache > 0 {
			cch = append(cch, plotter.XY{X: p.T, Y: p.Cache})
		}
	}
	err = drawPlot(filepath.Join(dir, "latency.png"), "Latency (log scale)", "milliseconds", true, loadEnd, []series{
		{name: "end to end, balance (per file, by its write time)", points: bal, dots: true},
		{name: "end to end, cache (per file)", points: cch, dots: true},
		{name: "REST read p99 (per second)", points: column(ss, func(s load.Second) float64 { return s.ReadP99 }, true)},
		{name: "REST read p50 (per second)", points: column(ss, func(s load.Second) float64 { return s.ReadP50 }, true)},
		{name: "CDC lag", points: column(ss, func(s load.Second) float64 { return s.CDCLag * 1000 }, true)},
	})
	if err != nil {
		return fmt.Errorf("latency plot: %w", err)
	}
	err = drawPlot(filepath.Join(dir, "lag.png"), "Consumer lag", "messages behind", false, loadEnd, []series{
		{name: "balance", points: column(ss, func(s load.Second) float64 { return s.BalanceLag }, false)},
		{name: "cache", points: column(ss, func(s load.Second) float64 { return s.CacheLag }, false)},
	})
	if err != nil {
		return fmt.Errorf("lag plot: %w", err)
	}
	return nil
}
