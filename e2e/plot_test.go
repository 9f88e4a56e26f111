package e2e

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plot draws dashboard d as Grafana lays it out in two columns, each
// panel's queries plotted from Prometheus between start and end, into a
// PNG at path.
func (p *prometheus) plot(d dashboard, start, end time.Time, path string) error {
	const cols = 2
	rows := (len(d.Panels) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, cols)
	}
	step := max(time.Second, end.Sub(start)/300)
	for i, panel := range d.Panels {
		pl := plot.New()
		pl.Title.Text = panel.Title
		pl.Title.TextStyle.Font.Size = vg.Points(11)
		pl.X.Tick.Marker = plot.TimeTicks{Format: "15:04:05"}
		pl.Y.Label.Text = panel.FieldConfig.Defaults.Unit
		pl.Legend.Top, pl.Legend.Left = true, true
		pl.Legend.TextStyle.Font.Size = vg.Points(7)
		pl.Add(plotter.NewGrid())
		n := 0
		for _, tg := range panel.Targets {
			r, err := p.rangeQuery(tg.Expr, start, end, step)
			if err != nil {
				return err
			}
			sort.Slice(r.Data.Result, func(a, b int) bool {
				return legend(tg.LegendFormat, r.Data.Result[a].Metric) < legend(tg.LegendFormat, r.Data.Result[b].Metric)
			})
			for _, s := range r.Data.Result {
				var pts plotter.XYs
				for _, v := range s.Values {
					ts, _ := v[0].(float64)
					str, _ := v[1].(string)
					f, err := strconv.ParseFloat(str, 64)
					if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
						continue
					}
					pts = append(pts, plotter.XY{X: ts, Y: f})
				}
				if len(pts) == 0 {
					continue
				}
				l, err := plotter.NewLine(pts)
				if err != nil {
					return err
				}
				l.Color = plotutil.Color(n)
				l.Dashes = plotutil.Dashes(n / len(plotutil.DefaultColors))
				l.Width = vg.Points(1.2)
				pl.Add(l)
				if n < 8 {
					pl.Legend.Add(legend(tg.LegendFormat, s.Metric), l)
				}
				n++
			}
		}
		plots[i/cols][i%cols] = pl
	}
	img := vgimg.NewWith(vgimg.UseWH(vg.Points(1200), vg.Points(float64(260*rows+40))), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	title := d.Title + fmt.Sprintf(" (plotted from Prometheus, %s to %s UTC)", start.UTC().Format("15:04:05"), end.UTC().Format("15:04:05"))
	font := plot.DefaultFont
	font.Size = vg.Points(14)
	dc.FillText(draw.TextStyle{Color: color.Black, Font: font, Handler: plot.DefaultTextHandler,
		XAlign: draw.XCenter, YAlign: draw.YTop}, vg.Point{X: dc.Center().X, Y: dc.Max.Y - vg.Points(8)}, title)
	dc.Max.Y -= vg.Points(30)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(16), PadY: vg.Points(16), PadTop: vg.Points(4),
		PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, dc)
	for j := range plots {
		for i := range plots[j] {
			if plots[j][i] != nil {
				plots[j][i].Draw(canvases[j][i])
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var legendVar = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// legend renders a Grafana legend format ("{{stage}} {{status}}") for a
// series' labels.
func legend(format string, labels map[string]string) string {
	return legendVar.ReplaceAllStringFunc(format, func(m string) string {
		return labels[legendVar.FindStringSubmatch(m)[1]]
	})
}
