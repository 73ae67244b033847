//! What the exported documents are made of, whatever their format: a title, headings,
//! paragraphs of runs, list items, quotes with when they were said, and simple tables. The
//! DOCX writer ([`super::docx`]) and, with the `pdf` feature, the PDF writer render it.

/// A piece of text of one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub text: String,
    pub bold: bool,
    pub italic: bool,
}

impl Run {
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            bold: false,
            italic: false,
        }
    }

    pub fn bold(text: impl Into<String>) -> Self {
        Self {
            bold: true,
            ..Self::plain(text)
        }
    }
}

/// One block of the document, in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Title(String),
    /// A heading of level 1 to 3 (other levels are clamped).
    Heading(u8, String),
    Paragraph(Vec<Run>),
    /// A list item: indented, after a bullet.
    Item(Vec<Run>),
    /// A quotation and, when known, when it was said (shown after it).
    Quote {
        text: String,
        time: Option<String>,
    },
    /// A header row and rows; rows shorter than the header are padded with empty cells.
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// A document being built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn title(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Block::Title(text.into()))
    }

    pub fn heading(&mut self, level: u8, text: impl Into<String>) -> &mut Self {
        self.push(Block::Heading(level, text.into()))
    }

    pub fn paragraph(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Block::Paragraph(vec![Run::plain(text)]))
    }

    pub fn runs(&mut self, runs: Vec<Run>) -> &mut Self {
        self.push(Block::Paragraph(runs))
    }

    pub fn item(&mut self, runs: Vec<Run>) -> &mut Self {
        self.push(Block::Item(runs))
    }

    pub fn quote(&mut self, text: impl Into<String>, time: Option<String>) -> &mut Self {
        self.push(Block::Quote {
            text: text.into(),
            time,
        })
    }

    pub fn table(&mut self, header: Vec<String>, rows: Vec<Vec<String>>) -> &mut Self {
        self.push(Block::Table { header, rows })
    }

    pub fn push(&mut self, block: Block) -> &mut Self {
        self.blocks.push(block);
        self
    }
}
