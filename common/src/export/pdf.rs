//! A small PDF writer for export [`Document`]s: A4 pages laid out here (text wrapped by the
//! font's advance widths, automatic page breaks, tables whose rows may continue on the next
//! page under a repeated header row, page numbers in the footer), written with `pdf-writer`.
//!
//! Text is set in DejaVu Sans (regular and bold; italic runs are the regular face slanted),
//! the fonts the `dejavu` crate ships as bytes: nothing is read from the system or fetched.
//! Each face used is embedded as a subset of the glyphs the document uses (`subsetter`), as a
//! Type0 font over a CIDFontType2 with `Identity-H` codes (two bytes a glyph) and a
//! `ToUnicode` map, so that text extracted from the file (search, copy, `pdftotext`) is the
//! text written, Cyrillic included. Page contents, font programs and maps are Flate streams.
//! No shaping and no kerning: DejaVu's Latin and Cyrillic need neither.

use std::collections::BTreeMap;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use subsetter::GlyphRemapper;

use super::document::{Block, Document, Run};

/// The media type of a PDF file.
pub const CONTENT_TYPE: &str = "application/pdf";

/// Why a document could not be written (a fault of the bundled fonts, not of the document).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the bundled font {0} cannot be read")]
    Font(&'static str),
    #[error("the bundled font {font} cannot be subset: {source}")]
    Subset {
        font: &'static str,
        source: subsetter::Error,
    },
}

// A4 in points, and the text area within it.
const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const LEFT: f32 = 70.0;
const RIGHT: f32 = PAGE_WIDTH - 56.0;
const TOP: f32 = PAGE_HEIGHT - 56.0;
const BOTTOM: f32 = 62.0;
/// The baseline of the page numbers.
const FOOTER: f32 = 32.0;

const BODY: f32 = 11.0;
const SMALL: f32 = 10.0;
/// Line height as a multiple of the font size.
const LEADING: f32 = 1.32;
/// Inner space of table cells.
const PAD: f32 = 4.0;
/// The slant of italic runs (the regular face sheared, as no italic face is embedded).
const SLANT: f32 = 0.2;
const TEXT_GRAY: f32 = 0.0;
const QUOTE_GRAY: f32 = 0.25;
const RULE_GRAY: f32 = 0.55;
const HEADER_FILL: f32 = 0.92;

/// The document as a PDF file.
pub fn render(doc: &Document) -> Result<Vec<u8>, Error> {
    let mut fonts = Fonts::new()?;
    let mut pages = layout(&fonts, doc);
    let total = pages.len();
    for (i, page) in pages.iter_mut().enumerate() {
        let style = Style {
            size: 9.0,
            gray: 0.45,
            ..Style::default()
        };
        let text = format!("{} / {total}", i + 1);
        let x = (LEFT + RIGHT - fonts.width(style, &text)) / 2.0;
        page.push(Op::Text {
            x,
            y: FOOTER,
            style,
            text,
        });
    }
    let title = doc.blocks.iter().find_map(|b| match b {
        Block::Title(t) => Some(t.as_str()),
        _ => None,
    });
    write(&mut fonts, &pages, title)
}

/// How a piece of text looks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Style {
    bold: bool,
    italic: bool,
    size: f32,
    /// Fill gray, 0 black to 1 white.
    gray: f32,
}

impl Default for Style {
    fn default() -> Self {
        Self {
            bold: false,
            italic: false,
            size: BODY,
            gray: TEXT_GRAY,
        }
    }
}

impl Style {
    fn sized(size: f32) -> Self {
        Self {
            size,
            ..Self::default()
        }
    }

    fn bold(self) -> Self {
        Self { bold: true, ..self }
    }

    fn leading(self) -> f32 {
        self.size * LEADING
    }
}

/// What a page shows, in page coordinates (points from the bottom left corner).
#[derive(Debug, Clone, PartialEq)]
enum Op {
    /// Text on a baseline starting at `x`.
    Text {
        x: f32,
        y: f32,
        style: Style,
        text: String,
    },
    /// A line.
    Rule { x1: f32, y1: f32, x2: f32, y2: f32 },
    /// A gray rectangle, from its bottom left corner.
    Fill { x: f32, y: f32, w: f32, h: f32 },
}

/// A line of text: pieces of one style each, in order.
type Line = Vec<(Style, String)>;

/// One of the embedded faces and the glyphs the document uses from it.
struct Face {
    name: &'static str,
    data: &'static [u8],
    face: ttf_parser::Face<'static>,
    /// Thousandths of an em per font unit.
    scale: f32,
    glyphs: GlyphRemapper,
    /// The character each glyph of the subset (by its new id) was first used for.
    unicode: BTreeMap<u16, char>,
}

impl Face {
    fn new(name: &'static str, data: &'static [u8]) -> Result<Self, Error> {
        let face = ttf_parser::Face::parse(data, 0).map_err(|_| Error::Font(name))?;
        Ok(Self {
            name,
            data,
            scale: 1000.0 / f32::from(face.units_per_em().max(1)),
            face,
            glyphs: GlyphRemapper::new(),
            unicode: BTreeMap::new(),
        })
    }

    /// The glyph of `c` in the whole font (0, `.notdef`, when it has none).
    fn glyph(&self, c: char) -> u16 {
        self.face.glyph_index(c).map_or(0, |g| g.0)
    }

    /// The advance of a glyph, in thousandths of an em.
    fn advance(&self, glyph: u16) -> f32 {
        let units = self
            .face
            .glyph_hor_advance(ttf_parser::GlyphId(glyph))
            .unwrap_or(0);
        f32::from(units) * self.scale
    }

    /// Text as the codes of the subset's glyphs (big-endian pairs), noting which characters
    /// the glyphs stand for.
    fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let glyph = self.glyphs.remap(self.glyph(c));
            if glyph != 0 {
                self.unicode.entry(glyph).or_insert(c);
            }
            out.extend_from_slice(&glyph.to_be_bytes());
        }
        out
    }
}

struct Fonts {
    regular: Face,
    bold: Face,
}

impl Fonts {
    fn new() -> Result<Self, Error> {
        Ok(Self {
            regular: Face::new("DejaVuSans", dejavu::sans::regular())?,
            bold: Face::new("DejaVuSans-Bold", dejavu::sans::bold())?,
        })
    }

    fn face(&self, style: Style) -> &Face {
        if style.bold {
            &self.bold
        } else {
            &self.regular
        }
    }

    /// The width of `text` in points.
    fn width(&self, style: Style, text: &str) -> f32 {
        let face = self.face(style);
        text.chars()
            .map(|c| face.advance(face.glyph(c)))
            .sum::<f32>()
            * style.size
            / 1000.0
    }
}

/// Characters a line can show: tabs and other white space as spaces, control characters
/// dropped; line breaks stay (they end a line).
fn clean(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter_map(|c| match c {
            '\n' => Some('\n'),
            c if c.is_whitespace() => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Appends text to a line, joining it to the last piece when that has the same style.
fn push_piece(line: &mut Line, style: Style, text: &str) {
    match line.last_mut() {
        Some((s, t)) if *s == style => t.push_str(text),
        _ => line.push((style, text.to_owned())),
    }
}

/// Styled text broken into lines no wider than `width` points: at spaces where it can be, and
/// inside a word only when the word alone is wider than a line. Spaces at the ends of lines
/// are dropped; `\n` ends a line.
fn wrap(fonts: &Fonts, pieces: &[(Style, String)], width: f32) -> Vec<Line> {
    struct State<'a> {
        fonts: &'a Fonts,
        width: f32,
        lines: Vec<Line>,
        line: Line,
        line_width: f32,
        /// A space seen after the line's last word, in the style it was written in.
        space: Option<Style>,
    }
    impl State<'_> {
        fn end_line(&mut self) {
            self.lines.push(std::mem::take(&mut self.line));
            self.line_width = 0.0;
            self.space = None;
        }
        fn place(&mut self, word: &mut Line) {
            if word.is_empty() {
                return;
            }
            let w: f32 = word.iter().map(|(s, t)| self.fonts.width(*s, t)).sum();
            let mut space = match self.space.take() {
                Some(s) if !self.line.is_empty() => (s, self.fonts.width(s, " ")),
                _ => (Style::default(), 0.0),
            };
            if !self.line.is_empty() && self.line_width + space.1 + w > self.width {
                self.end_line();
                space.1 = 0.0;
            }
            if self.line.is_empty() && w > self.width {
                // A word wider than a line: as many characters on each line as fit.
                for (style, text) in word.drain(..) {
                    for c in text.chars() {
                        let cw = self.fonts.width(style, c.encode_utf8(&mut [0; 4]));
                        if !self.line.is_empty() && self.line_width + cw > self.width {
                            self.end_line();
                        }
                        push_piece(&mut self.line, style, c.encode_utf8(&mut [0; 4]));
                        self.line_width += cw;
                    }
                }
                return;
            }
            if space.1 > 0.0 {
                push_piece(&mut self.line, space.0, " ");
                self.line_width += space.1;
            }
            for (style, text) in word.drain(..) {
                push_piece(&mut self.line, style, &text);
            }
            self.line_width += w;
        }
    }

    let mut state = State {
        fonts,
        width,
        lines: Vec::new(),
        line: Vec::new(),
        line_width: 0.0,
        space: None,
    };
    let mut word: Line = Vec::new();
    for (style, text) in pieces {
        for c in clean(text).chars() {
            match c {
                '\n' => {
                    state.place(&mut word);
                    state.end_line();
                }
                ' ' => {
                    state.place(&mut word);
                    if !state.line.is_empty() {
                        state.space = Some(*style);
                    }
                }
                c => push_piece(&mut word, *style, c.encode_utf8(&mut [0; 4])),
            }
        }
    }
    state.place(&mut word);
    if !state.line.is_empty() || state.lines.is_empty() {
        state.end_line();
    }
    state.lines
}

/// Pages being filled from the top down.
struct Layout<'a> {
    fonts: &'a Fonts,
    pages: Vec<Vec<Op>>,
    /// The top of the space left on the last page.
    y: f32,
}

impl<'a> Layout<'a> {
    fn new(fonts: &'a Fonts) -> Self {
        Self {
            fonts,
            pages: vec![Vec::new()],
            y: TOP,
        }
    }

    fn fresh(&self) -> bool {
        self.y >= TOP
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// A new page unless `height` still fits on this one (or this one is empty).
    fn ensure(&mut self, height: f32) {
        if self.y - height < BOTTOM && !self.fresh() {
            self.new_page();
        }
    }

    /// Space before a block (none at the top of a page).
    fn gap(&mut self, points: f32) {
        if !self.fresh() {
            self.y -= points;
        }
    }

    fn op(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    /// One line's pieces from `x` on the baseline `y`.
    fn show(&mut self, line: Line, x: f32, y: f32) {
        let mut x = x;
        for (style, text) in line {
            let w = self.fonts.width(style, &text);
            self.op(Op::Text { x, y, style, text });
            x += w;
        }
    }

    /// Wrapped lines from `x` to the right margin, each on this page if it fits, else on the
    /// next; `bar` draws a rule left of each line (quotes).
    fn lines(&mut self, lines: Vec<Line>, x: f32, leading: f32, bar: Option<f32>) {
        for line in lines {
            self.ensure(leading);
            let size = line.iter().map(|(s, _)| s.size).fold(0.0, f32::max);
            let baseline = self.y - (leading + size * 0.7) / 2.0;
            if let Some(bx) = bar {
                self.op(Op::Rule {
                    x1: bx,
                    y1: self.y,
                    x2: bx,
                    y2: self.y - leading,
                });
            }
            self.show(line, x, baseline);
            self.y -= leading;
        }
    }

    fn text(&mut self, pieces: &[(Style, String)], x: f32, style: Style) {
        let lines = wrap(self.fonts, pieces, RIGHT - x);
        self.lines(lines, x, style.leading(), None);
    }

    fn block(&mut self, block: &Block) {
        let body = Style::default();
        match block {
            Block::Title(text) => {
                let style = Style::sized(20.0).bold();
                self.text(&[(style, text.clone())], LEFT, style);
                self.y -= 10.0;
            }
            Block::Heading(level, text) => {
                let (size, before) = match level {
                    0 | 1 => (16.0, 16.0),
                    2 => (14.0, 14.0),
                    _ => (12.0, 10.0),
                };
                let style = Style::sized(size).bold();
                self.gap(before);
                // Kept with the two lines that follow it.
                self.ensure(style.leading() + 2.0 * body.leading());
                self.text(&[(style, text.clone())], LEFT, style);
                self.y -= 3.0;
            }
            Block::Paragraph(runs) => {
                self.text(&styled(runs, body), LEFT, body);
                self.y -= 6.0;
            }
            Block::Item(runs) => {
                let indent = LEFT + 18.0;
                let lines = wrap(self.fonts, &styled(runs, body), RIGHT - indent);
                self.ensure(body.leading());
                let baseline = self.y - (body.leading() + body.size * 0.7) / 2.0;
                self.show(vec![(body, "•".to_owned())], LEFT + 6.0, baseline);
                self.lines(lines, indent, body.leading(), None);
                self.y -= 3.0;
            }
            Block::Quote { text, time } => {
                let quote = Style {
                    italic: true,
                    gray: QUOTE_GRAY,
                    ..body
                };
                let mut pieces = vec![(quote, format!("«{text}»"))];
                if let Some(time) = time {
                    pieces.push((body, format!(" — {time}")));
                }
                let indent = LEFT + 18.0;
                let lines = wrap(self.fonts, &pieces, RIGHT - indent);
                self.lines(lines, indent, body.leading(), Some(LEFT + 6.0));
                self.y -= 6.0;
            }
            Block::Table { header, rows } => self.table(header, rows),
        }
    }

    fn table(&mut self, header: &[String], rows: &[Vec<String>]) {
        let cell = Style::sized(SMALL);
        let head = cell.bold();
        let columns = header
            .len()
            .max(rows.iter().map(Vec::len).max().unwrap_or(0))
            .max(1);
        let natural = |i: usize| {
            let h = header
                .get(i)
                .map_or(0.0, |t| self.fonts.width(head, &clean(t)));
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|t| self.fonts.width(cell, &clean(t)))
                .fold(h, f32::max)
                + 2.0 * PAD
        };
        let natural: Vec<f32> = (0..columns).map(natural).collect();
        let widths = column_widths(&natural, RIGHT - LEFT);
        let wrap_row = |cells: &[String], style: Style| -> Vec<Vec<Line>> {
            (0..columns)
                .map(|i| {
                    let text = cells.get(i).cloned().unwrap_or_default();
                    wrap(self.fonts, &[(style, text)], widths[i] - 2.0 * PAD)
                })
                .collect()
        };
        let header = (!header.is_empty()).then(|| wrap_row(header, head));
        let rows: Vec<Vec<Vec<Line>>> = rows.iter().map(|r| wrap_row(r, cell)).collect();

        self.gap(4.0);
        let first = header
            .iter()
            .chain(rows.first())
            .map(|r| row_height(r))
            .sum();
        self.ensure(first);
        self.top_rule();
        if let Some(h) = &header {
            self.row(h, &widths, None, true);
        }
        for r in &rows {
            self.row(r, &widths, header.as_deref(), false);
        }
        self.y -= 10.0;
    }

    fn top_rule(&mut self) {
        self.op(Op::Rule {
            x1: LEFT,
            y1: self.y,
            x2: RIGHT,
            y2: self.y,
        });
    }

    /// A table row; one that does not fit continues on the next page (after the header row
    /// again), unless it would fit whole on a page of its own, where it is moved.
    fn row(
        &mut self,
        cells: &[Vec<Line>],
        widths: &[f32],
        header: Option<&[Vec<Line>]>,
        head: bool,
    ) {
        let leading = SMALL * LEADING;
        let count = cells.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut from = 0;
        while from < count {
            let room = ((self.y - BOTTOM - 2.0 * PAD) / leading).floor().max(0.0) as usize;
            let whole_fits = count as f32 * leading + 2.0 * PAD <= TOP - BOTTOM;
            if (room == 0 || (from == 0 && room < count && whole_fits)) && !self.fresh() {
                self.new_page();
                self.top_rule();
                if let Some(h) = header {
                    self.row(h, widths, None, true);
                }
                continue;
            }
            let take = room.max(1).min(count - from);
            let h = take as f32 * leading + 2.0 * PAD;
            let top = self.y;
            if head {
                self.op(Op::Fill {
                    x: LEFT,
                    y: top - h,
                    w: RIGHT - LEFT,
                    h,
                });
            }
            let mut x = LEFT;
            for (i, lines) in cells.iter().enumerate() {
                for (k, line) in lines.iter().skip(from).take(take).enumerate() {
                    let size = line.iter().map(|(s, _)| s.size).fold(0.0, f32::max);
                    let baseline = top - PAD - k as f32 * leading - (leading + size * 0.7) / 2.0;
                    self.show(line.clone(), x + PAD, baseline);
                }
                self.op(Op::Rule {
                    x1: x,
                    y1: top,
                    x2: x,
                    y2: top - h,
                });
                x += widths.get(i).copied().unwrap_or(0.0);
            }
            self.op(Op::Rule {
                x1: RIGHT,
                y1: top,
                x2: RIGHT,
                y2: top - h,
            });
            self.op(Op::Rule {
                x1: LEFT,
                y1: top - h,
                x2: RIGHT,
                y2: top - h,
            });
            self.y = top - h;
            from += take;
        }
    }
}

fn row_height(cells: &[Vec<Line>]) -> f32 {
    let count = cells.iter().map(Vec::len).max().unwrap_or(0).max(1);
    count as f32 * SMALL * LEADING + 2.0 * PAD
}

/// Column widths that add up to `total`: columns narrower than an even share keep their
/// natural width, the others share what is left in proportion to theirs; when all fit, the
/// last column takes the rest.
fn column_widths(natural: &[f32], total: f32) -> Vec<f32> {
    let sum: f32 = natural.iter().sum();
    let mut widths = natural.to_vec();
    if sum <= total {
        if let Some(last) = widths.last_mut() {
            *last += total - sum;
        }
        return widths;
    }
    let mut open: Vec<usize> = (0..natural.len()).collect();
    let mut left = total;
    loop {
        let share = left / open.len().max(1) as f32;
        let (fit, wide): (Vec<usize>, Vec<usize>) =
            open.iter().partition(|&&i| natural[i] <= share);
        if fit.is_empty() || wide.is_empty() {
            let wide_sum: f32 = wide.iter().map(|&i| natural[i]).sum::<f32>().max(1.0);
            for &i in &wide {
                widths[i] = left * natural[i] / wide_sum;
            }
            if wide.is_empty() {
                for &i in &fit {
                    widths[i] = natural[i];
                }
            }
            return widths;
        }
        for &i in &fit {
            left -= natural[i];
        }
        open = wide;
    }
}

fn styled(runs: &[Run], base: Style) -> Vec<(Style, String)> {
    runs.iter()
        .map(|r| {
            let style = Style {
                bold: r.bold,
                italic: r.italic,
                ..base
            };
            (style, r.text.clone())
        })
        .collect()
}

/// The document's blocks on pages (without page numbers).
fn layout(fonts: &Fonts, doc: &Document) -> Vec<Vec<Op>> {
    let mut layout = Layout::new(fonts);
    for block in &doc.blocks {
        layout.block(block);
    }
    layout.pages
}

const SYSTEM_INFO: SystemInfo = SystemInfo {
    registry: Str(b"Adobe"),
    ordering: Str(b"Identity"),
    supplement: 0,
};

fn deflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

/// The pages as a PDF file, with the fonts they use.
fn write(fonts: &mut Fonts, pages: &[Vec<Op>], title: Option<&str>) -> Result<Vec<u8>, Error> {
    let mut next = 0;
    let mut id = || {
        next += 1;
        Ref::new(next)
    };
    let (catalog, tree, info) = (id(), id(), id());
    let page_ids: Vec<(Ref, Ref)> = pages.iter().map(|_| (id(), id())).collect();
    let font_ids = [
        [id(), id(), id(), id(), id()],
        [id(), id(), id(), id(), id()],
    ];

    let mut pdf = Pdf::new();
    pdf.set_version(1, 7);
    pdf.catalog(catalog).pages(tree);
    let mut doc_info = pdf.document_info(info);
    if let Some(title) = title {
        doc_info.title(TextStr(title));
    }
    doc_info.producer(TextStr("VoxPersona"));
    doc_info.finish();
    pdf.pages(tree)
        .kids(page_ids.iter().map(|(page, _)| *page))
        .count(pages.len() as i32);

    let contents: Vec<Vec<u8>> = pages.iter().map(|ops| content(fonts, ops)).collect();
    let used = [
        fonts.regular.glyphs.num_gids() > 1,
        fonts.bold.glyphs.num_gids() > 1,
    ];
    for ((page_id, content_id), data) in page_ids.iter().zip(&contents) {
        let mut page = pdf.page(*page_id);
        page.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(*content_id);
        let mut resources = page.resources();
        let mut names = resources.fonts();
        for (i, name) in [b"F1", b"F2"].iter().enumerate() {
            if used[i] {
                names.pair(Name(*name), font_ids[i][0]);
            }
        }
        names.finish();
        resources.finish();
        page.finish();
        pdf.stream(*content_id, &deflate(data))
            .filter(Filter::FlateDecode);
    }
    for (i, face) in [&fonts.regular, &fonts.bold].into_iter().enumerate() {
        if used[i] {
            embed(&mut pdf, face, font_ids[i])?;
        }
    }
    Ok(pdf.finish())
}

/// One page's content stream.
fn content(fonts: &mut Fonts, ops: &[Op]) -> Vec<u8> {
    let mut c = Content::new();
    c.set_line_width(0.5);
    c.set_stroke_gray(RULE_GRAY);
    // Fills first, so that the rules and text of a row are drawn over its shading.
    for op in ops {
        if let Op::Fill { x, y, w, h } = op {
            c.set_fill_gray(HEADER_FILL);
            c.rect(*x, *y, *w, *h);
            c.fill_nonzero();
        }
    }
    for op in ops {
        match op {
            Op::Rule { x1, y1, x2, y2 } => {
                c.move_to(*x1, *y1);
                c.line_to(*x2, *y2);
                c.stroke();
            }
            Op::Text { x, y, style, text } => {
                let (name, face) = if style.bold {
                    (Name(b"F2"), &mut fonts.bold)
                } else {
                    (Name(b"F1"), &mut fonts.regular)
                };
                let codes = face.encode(text);
                let skew = if style.italic { SLANT } else { 0.0 };
                c.set_fill_gray(style.gray);
                c.begin_text();
                c.set_font(name, style.size);
                c.set_text_matrix([1.0, 0.0, skew, 1.0, *x, *y]);
                c.show(Str(&codes));
                c.end_text();
            }
            Op::Fill { .. } => {}
        }
    }
    c.finish().into_vec()
}

/// A face's subset as a Type0 font: `[type0, cid font, descriptor, font file, to-unicode]`.
fn embed(
    pdf: &mut Pdf,
    face: &Face,
    [type0, cid, descriptor, file, cmap]: [Ref; 5],
) -> Result<(), Error> {
    let subset = subsetter::subset(face.data, 0, &face.glyphs).map_err(|source| Error::Subset {
        font: face.name,
        source,
    })?;
    let base = format!("{}+{}", subset_tag(&face.glyphs), face.name);
    let base = Name(base.as_bytes());

    pdf.type0_font(type0)
        .base_font(base)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid)
        .to_unicode(cmap);

    let mut cid_font = pdf.cid_font(cid);
    cid_font
        .subtype(CidFontType::Type2)
        .base_font(base)
        .system_info(SYSTEM_INFO)
        .font_descriptor(descriptor)
        .default_width(0.0)
        .cid_to_gid_map_predefined(Name(b"Identity"));
    let widths: Vec<f32> = face
        .glyphs
        .remapped_gids()
        .map(|g| face.advance(g))
        .collect();
    cid_font.widths().consecutive(0, widths);
    cid_font.finish();

    let f = &face.face;
    let scale = |v: i16| f32::from(v) * face.scale;
    let bbox = f.global_bounding_box();
    let bold = face.name.ends_with("Bold");
    pdf.font_descriptor(descriptor)
        .name(base)
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(
            scale(bbox.x_min),
            scale(bbox.y_min),
            scale(bbox.x_max),
            scale(bbox.y_max),
        ))
        .italic_angle(0.0)
        .ascent(scale(f.ascender()))
        .descent(scale(f.descender()))
        .cap_height(scale(f.capital_height().unwrap_or(f.ascender())))
        .stem_v(if bold { 140.0 } else { 80.0 })
        .font_file2(file);

    let packed = deflate(&subset);
    let mut stream = pdf.stream(file, &packed);
    stream.filter(Filter::FlateDecode);
    stream.pair(Name(b"Length1"), subset.len() as i32);
    stream.finish();

    let mut map = UnicodeCmap::new(Name(b"Custom"), SYSTEM_INFO);
    for (&glyph, &c) in &face.unicode {
        map.pair(glyph, c);
    }
    pdf.cmap(cmap, &deflate(&map.finish()))
        .name(Name(b"Custom"))
        .system_info(SYSTEM_INFO)
        .filter(Filter::FlateDecode);
    Ok(())
}

/// The six capital letters that name a subset (`ABCDEF+Font`), from the glyphs it holds.
fn subset_tag(glyphs: &GlyphRemapper) -> String {
    // FNV-1a over the glyph ids.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for g in glyphs.remapped_gids() {
        for b in g.to_be_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (0..6)
        .map(|i| char::from(b'A' + ((hash >> (i * 5)) % 26) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading back what [`render`] writes, enough to check it: the cross-reference table
    /// against the objects, and the decoded streams.
    mod read {
        fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
            hay.get(from..)?
                .windows(needle.len())
                .position(|w| w == needle)
                .map(|p| p + from)
        }

        fn number_after(hay: &[u8], key: &[u8]) -> Option<usize> {
            let at = find(hay, key, 0)? + key.len();
            let digits: String = hay[at..]
                .iter()
                .map(|&b| b as char)
                .skip_while(|c| c.is_whitespace())
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        }

        /// The offsets of the in-use objects the cross-reference table lists, each checked to
        /// start `N 0 obj`; `None` when the file does not hold together.
        pub fn xref(pdf: &[u8]) -> Option<Vec<usize>> {
            let start_at = pdf.len().checked_sub(40)?;
            let start = number_after(&pdf[start_at..], b"startxref")?;
            let table = pdf.get(start..)?;
            if !table.starts_with(b"xref\n0 ") {
                return None;
            }
            let text = String::from_utf8_lossy(table);
            let mut lines = text.lines().skip(1);
            let count: usize = lines.next()?.split(' ').nth(1)?.parse().ok()?;
            let mut offsets = Vec::new();
            for (n, line) in lines.take(count).enumerate() {
                let mut parts = line.split_whitespace();
                let offset: usize = parts.next()?.parse().ok()?;
                let kind = parts.nth(1)?;
                if kind == "n" {
                    let object = format!("{n} 0 obj");
                    if !pdf.get(offset..)?.starts_with(object.as_bytes()) {
                        return None;
                    }
                    offsets.push(offset);
                }
            }
            let trailer = find(pdf, b"trailer", start)?;
            number_after(&pdf[trailer..], b"/Size").filter(|&n| n == count)?;
            Some(offsets)
        }

        /// Every stream: its dictionary's text and its decoded data.
        pub fn streams(pdf: &[u8]) -> Vec<(String, Vec<u8>)> {
            let mut out = Vec::new();
            let mut at = 0;
            while let Some(s) = find(pdf, b"stream\n", at) {
                if pdf[..s].ends_with(b"end") {
                    at = s + 7;
                    continue;
                }
                let obj = pdf[..s].windows(3).rposition(|w| w == b"obj").unwrap_or(0);
                let dict = String::from_utf8_lossy(&pdf[obj..s]).into_owned();
                let len = number_after(dict.as_bytes(), b"/Length ").unwrap_or(0);
                let data = &pdf[s + 7..s + 7 + len];
                let data = if dict.contains("/FlateDecode") {
                    miniz_oxide::inflate::decompress_to_vec_zlib(data).unwrap_or_default()
                } else {
                    data.to_vec()
                };
                out.push((dict, data));
                at = s + 7 + len;
            }
            out
        }

        /// The glyph-to-text pairs of a `ToUnicode` map.
        pub fn to_unicode(cmap: &[u8]) -> Vec<(u16, String)> {
            let text = String::from_utf8_lossy(cmap);
            text.lines()
                .filter_map(|l| {
                    let l = l.strip_prefix('<')?;
                    let (glyph, rest) = l.split_once("> <")?;
                    let hex = rest.strip_suffix('>')?;
                    let units: Vec<u16> = (0..hex.len())
                        .step_by(4)
                        .filter_map(|i| u16::from_str_radix(hex.get(i..i + 4)?, 16).ok())
                        .collect();
                    Some((
                        u16::from_str_radix(glyph, 16).ok()?,
                        String::from_utf16(&units).ok()?,
                    ))
                })
                .collect()
        }

        /// The strings shown by `Tj` in a content stream, as bytes, in order.
        pub fn shown(content: &[u8]) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            let mut i = 0;
            while i < content.len() {
                match content[i] {
                    b'<' => {
                        let end = find(content, b">", i).unwrap_or(content.len());
                        let hex = String::from_utf8_lossy(&content[i + 1..end]).into_owned();
                        out.push(
                            (0..hex.len())
                                .step_by(2)
                                .filter_map(|k| u8::from_str_radix(hex.get(k..k + 2)?, 16).ok())
                                .collect(),
                        );
                        i = end + 1;
                    }
                    b'(' => {
                        let mut bytes = Vec::new();
                        let mut depth = 1;
                        i += 1;
                        while i < content.len() {
                            let b = content[i];
                            match b {
                                b'\\' => {
                                    i += 1;
                                    match content[i] {
                                        b'n' => bytes.push(b'\n'),
                                        b'r' => bytes.push(b'\r'),
                                        b't' => bytes.push(b'\t'),
                                        b'b' => bytes.push(8),
                                        b'f' => bytes.push(12),
                                        d @ b'0'..=b'7' => {
                                            let mut v = u32::from(d - b'0');
                                            for _ in 0..2 {
                                                match content.get(i + 1) {
                                                    Some(&d @ b'0'..=b'7') => {
                                                        v = v * 8 + u32::from(d - b'0');
                                                        i += 1;
                                                    }
                                                    _ => break,
                                                }
                                            }
                                            bytes.push(v as u8);
                                        }
                                        other => bytes.push(other),
                                    }
                                }
                                b'(' => {
                                    depth += 1;
                                    bytes.push(b);
                                }
                                b')' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        break;
                                    }
                                    bytes.push(b);
                                }
                                _ => bytes.push(b),
                            }
                            i += 1;
                        }
                        out.push(bytes);
                        i += 1;
                    }
                    _ => i += 1,
                }
            }
            out
        }
    }

    fn pages(pdf: &[u8]) -> usize {
        String::from_utf8_lossy(pdf)
            .matches("/Type /Page\n")
            .count()
            + String::from_utf8_lossy(pdf).matches("/Type /Page ").count()
    }

    fn sample() -> Document {
        let mut doc = Document::new();
        doc.title("Структурированный отчёт — Фасад")
            .table(
                Vec::new(),
                vec![
                    vec!["Сценарий".into(), "Дизайн".into()],
                    vec!["Место".into(), "Гранд Отель Казань".into()],
                ],
            )
            .heading(2, "Метрики")
            .table(
                vec!["Показатель".into(), "Значение".into()],
                vec![vec!["общее_количество".into(), "12".into()]],
            )
            .runs(vec![
                Run::plain("Вход "),
                Run::bold("чистый"),
                Run::plain("."),
            ])
            .item(vec![Run::plain("пункт")])
            .quote(
                "Входная группа хорошо освещена.",
                Some("0:00–0:04 ✓".into()),
            );
        doc
    }

    #[test]
    fn a_document_is_a_pdf_whose_cross_reference_table_finds_every_object() {
        let bytes = render(&sample()).expect("the bundled fonts");
        let text = String::from_utf8_lossy(&bytes);

        assert!(bytes.starts_with(b"%PDF-1.7\n"), "{text:.40}");
        assert!(bytes.ends_with(b"%%EOF") || bytes.ends_with(b"%%EOF\n"));
        let offsets = read::xref(&bytes).expect("a consistent xref table and trailer");
        assert!(
            offsets.len() >= 13,
            "catalog, pages, info, a page and two fonts"
        );
        assert!(text.contains("/Root 1 0 R"), "{text}");
        assert_eq!(pages(&bytes), 1);
        for part in [
            "/MediaBox [0 0 595.28 841.89]",
            "/Subtype /Type0",
            "/Encoding /Identity-H",
            "/Subtype /CIDFontType2",
            "/CIDToGIDMap /Identity",
            "+DejaVuSans-Bold",
            "+DejaVuSans\n",
            "/FontFile2",
            "/ToUnicode",
        ] {
            assert!(text.contains(part), "{part:?} missing");
        }
        let mut damaged = bytes.clone();
        let at = text.find("2 0 obj").expect("the page tree");
        damaged.insert(at, b' ');
        assert!(read::xref(&damaged).is_none(), "the checker can fail");
    }

    #[test]
    fn fonts_are_subsets_and_equal_documents_are_equal_files() {
        let bytes = render(&sample()).unwrap_or_default();
        let fonts: Vec<usize> = read::streams(&bytes)
            .into_iter()
            .filter(|(dict, _)| dict.contains("/Length1"))
            .map(|(_, data)| data.len())
            .collect();

        assert_eq!(fonts.len(), 2, "regular and bold");
        for size in fonts {
            assert!(size < 60_000, "a subset, not the whole font: {size} bytes");
        }
        assert!(bytes.len() < 80_000, "{} bytes", bytes.len());
        assert_eq!(bytes, render(&sample()).unwrap_or_default());
    }

    #[test]
    fn cyrillic_text_reads_back_through_the_to_unicode_map() {
        let mut doc = Document::new();
        doc.paragraph("Отчёт «Щука»: ёлка, Ёж и 5 ✓ — done");
        let bytes = render(&doc).unwrap_or_default();
        let streams = read::streams(&bytes);
        let (_, cmap) = streams
            .iter()
            .find(|(dict, _)| dict.contains("/Type /CMap"))
            .expect("a ToUnicode map");
        let map: BTreeMap<u16, String> = read::to_unicode(cmap).into_iter().collect();
        let (_, page) = streams
            .iter()
            .find(|(_, data)| data.windows(2).any(|w| w == b"Tj"))
            .expect("a content stream");

        let text: Vec<String> = read::shown(page)
            .iter()
            .map(|codes| {
                codes
                    .chunks(2)
                    .map(|c| {
                        let glyph = u16::from_be_bytes([c[0], c[1]]);
                        map.get(&glyph)
                            .cloned()
                            .unwrap_or_else(|| "\u{fffd}".into())
                    })
                    .collect()
            })
            .collect();

        assert_eq!(text, ["Отчёт «Щука»: ёлка, Ёж и 5 ✓ — done", "1 / 1"]);
        assert!(
            !streams.iter().any(|(d, _)| d.contains("Bold")),
            "bold unused"
        );
    }

    #[test]
    fn lines_wrap_at_spaces_within_the_width_and_long_words_are_cut() {
        let fonts = Fonts::new().expect("the bundled fonts");
        let body = Style::default();
        let words = "съешь же ещё этих мягких французских булок да выпей чаю ".repeat(6);
        let pieces = [
            (body, words.clone()),
            (body.bold(), "полужирный".to_owned()),
            (body, format!(" хвост {}", "ы".repeat(120))),
        ];
        let width = 200.0;

        let lines = wrap(&fonts, &pieces, width);

        assert!(lines.len() > 5, "{lines:?}");
        let text = |line: &Line| line.iter().map(|(_, t)| t.as_str()).collect::<String>();
        for line in &lines {
            let w: f32 = line.iter().map(|(s, t)| fonts.width(*s, t)).sum();
            assert!(w <= width + 0.01, "{w} > {width}: {line:?}");
            assert!(!text(line).starts_with(' ') && !text(line).ends_with(' '));
        }
        let joined: Vec<String> = lines.iter().map(text).collect();
        assert_eq!(
            joined.concat().replace(' ', ""),
            format!("{words}полужирный хвост {}", "ы".repeat(120)).replace(' ', ""),
        );
        assert!(
            lines
                .iter()
                .any(|l| l.iter().any(|(s, t)| s.bold && t == "полужирный")),
            "a bold run stays bold"
        );
        assert_eq!(
            wrap(&fonts, &[(body, "а\nб".into())], width).len(),
            2,
            "a line break ends a line"
        );
    }

    #[test]
    fn long_documents_break_into_pages_that_keep_within_the_margins() {
        let mut doc = Document::new();
        doc.title("Длинный отчёт");
        for i in 0..60 {
            doc.heading(2, format!("Раздел {i}"));
            doc.paragraph("Гости отмечают чистоту лобби и вежливость персонала. ".repeat(4));
        }
        doc.table(
            vec!["Показатель".into(), "Значение".into()],
            (0..80)
                .map(|i| vec![format!("показатель_{i}"), i.to_string()])
                .collect(),
        );
        let fonts = Fonts::new().expect("the bundled fonts");

        let pages = layout(&fonts, &doc);
        let bytes = render(&doc).unwrap_or_default();

        assert!(pages.len() >= 5, "{} pages", pages.len());
        assert_eq!(self::pages(&bytes), pages.len());
        assert!(read::xref(&bytes).is_some());
        for page in &pages {
            for op in page {
                if let Op::Text { x, y, style, text } = op {
                    assert!(*y >= BOTTOM - 1.0 && *y <= TOP, "{y} {text}");
                    assert!(x + fonts.width(*style, text) <= RIGHT + 0.01, "{text}");
                }
            }
        }
        // The table continues on a new page under its header row again.
        let headers = pages
            .iter()
            .filter(|p| {
                p.iter()
                    .any(|op| matches!(op, Op::Text { text, style, .. } if style.bold && text == "Показатель"))
            })
            .count();
        assert!(headers >= 2, "{headers}");
        assert!(
            String::from_utf8_lossy(&bytes).contains(&format!("/Count {}", pages.len())),
            "the page tree counts every page"
        );
    }

    #[test]
    fn column_widths_fill_the_width_and_favour_the_wider_column() {
        assert_eq!(column_widths(&[50.0, 100.0], 400.0), [50.0, 350.0]);
        let w = column_widths(&[60.0, 900.0], 400.0);
        assert_eq!(w[0], 60.0);
        assert!((w[1] - 340.0).abs() < 0.01);
        let w = column_widths(&[500.0, 1500.0], 400.0);
        assert!(
            (w[0] - 100.0).abs() < 0.01 && (w[1] - 300.0).abs() < 0.01,
            "{w:?}"
        );
    }
}
