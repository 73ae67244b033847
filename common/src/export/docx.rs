//! A small DOCX (Office Open XML) writer: a document of titles, headings, paragraphs of runs,
//! list items, quotes and simple tables, written as the ZIP package Word and LibreOffice open.
//!
//! The package holds `[Content_Types].xml`, `_rels/.rels`, `word/document.xml`,
//! `word/_rels/document.xml.rels` and `word/styles.xml` (Title, Heading1..3, Quote, ListItem
//! and a bordered table style), each a STORED (uncompressed) ZIP entry with its CRC-32. Text
//! is UTF-8 with `&`, `<`, `>` and `"` as character references; characters XML does not allow
//! become spaces, and line breaks inside a run become `<w:br/>`.

use std::fmt::Write;

/// The media type of a DOCX file.
pub const CONTENT_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

pub use super::document::{Block, Document, Run};

/// The DOCX rendering of a [`Document`].
impl Document {
    /// `word/document.xml`.
    pub fn document_xml(&self) -> String {
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:document \
             xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>",
        );
        for block in &self.blocks {
            match block {
                Block::Title(text) => paragraph(&mut out, Some("Title"), &[Run::plain(text)]),
                Block::Heading(level, text) => {
                    let style = format!("Heading{}", (*level).clamp(1, 3));
                    paragraph(&mut out, Some(&style), &[Run::plain(text)]);
                }
                Block::Paragraph(runs) => paragraph(&mut out, None, runs),
                Block::Item(runs) => {
                    let mut all = vec![Run::plain("•\u{a0}")];
                    all.extend(runs.iter().cloned());
                    paragraph(&mut out, Some("ListItem"), &all);
                }
                Block::Quote { text, time } => {
                    let mut runs = vec![Run {
                        italic: true,
                        ..Run::plain(format!("«{text}»"))
                    }];
                    if let Some(time) = time {
                        runs.push(Run::plain(format!(" — {time}")));
                    }
                    paragraph(&mut out, Some("Quote"), &runs);
                }
                Block::Table { header, rows } => table(&mut out, header, rows),
            }
        }
        out.push_str(
            "<w:sectPr><w:pgSz w:w=\"11906\" w:h=\"16838\"/><w:pgMar w:top=\"1134\" \
             w:right=\"850\" w:bottom=\"1134\" w:left=\"1701\" w:header=\"708\" \
             w:footer=\"708\" w:gutter=\"0\"/></w:sectPr></w:body></w:document>",
        );
        out
    }

    /// The DOCX file.
    pub fn to_bytes(&self) -> Vec<u8> {
        zip(&[
            ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
            ("_rels/.rels", RELS.as_bytes()),
            ("word/document.xml", self.document_xml().as_bytes()),
            ("word/_rels/document.xml.rels", DOCUMENT_RELS.as_bytes()),
            ("word/styles.xml", STYLES.as_bytes()),
        ])
    }
}

/// Text as XML character data or attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{fffe}' | '\u{ffff}') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn paragraph(out: &mut String, style: Option<&str>, runs: &[Run]) {
    out.push_str("<w:p>");
    if let Some(style) = style {
        let _ = write!(out, "<w:pPr><w:pStyle w:val=\"{style}\"/></w:pPr>");
    }
    for run in runs {
        out.push_str("<w:r>");
        if run.bold || run.italic {
            out.push_str("<w:rPr>");
            if run.bold {
                out.push_str("<w:b/>");
            }
            if run.italic {
                out.push_str("<w:i/>");
            }
            out.push_str("</w:rPr>");
        }
        let text = run.text.replace("\r\n", "\n").replace(['\r', '\t'], " ");
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                out.push_str("<w:br/>");
            }
            let _ = write!(out, "<w:t xml:space=\"preserve\">{}</w:t>", escape(line));
        }
        out.push_str("</w:r>");
    }
    out.push_str("</w:p>");
}

fn table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    let columns = header
        .len()
        .max(rows.iter().map(Vec::len).max().unwrap_or(0))
        .max(1);
    // The text width of an A4 page with the margins above, in twentieths of a point.
    let width = 9355 / columns;
    out.push_str(
        "<w:tbl><w:tblPr><w:tblStyle w:val=\"TableGrid\"/><w:tblW w:w=\"5000\" \
         w:type=\"pct\"/></w:tblPr><w:tblGrid>",
    );
    for _ in 0..columns {
        let _ = write!(out, "<w:gridCol w:w=\"{width}\"/>");
    }
    out.push_str("</w:tblGrid>");
    let mut row = |cells: &[String], head: bool| {
        out.push_str("<w:tr>");
        if head {
            out.push_str("<w:trPr><w:tblHeader/></w:trPr>");
        }
        for i in 0..columns {
            let text = cells.get(i).map(String::as_str).unwrap_or_default();
            let run = Run {
                bold: head,
                ..Run::plain(text)
            };
            let _ = write!(
                out,
                "<w:tc><w:tcPr><w:tcW w:w=\"{width}\" w:type=\"dxa\"/></w:tcPr>"
            );
            paragraph(out, None, &[run]);
            out.push_str("</w:tc>");
        }
        out.push_str("</w:tr>");
    };
    if !header.is_empty() {
        row(header, true);
    }
    for cells in rows {
        row(cells, false);
    }
    // A table is followed by a paragraph (Word needs one before the section's end).
    out.push_str("</w:tbl><w:p/>");
}

/// The entries as a ZIP archive, each STORED with its CRC-32 (dated 1980-01-01, the format's
/// epoch, so that equal documents are equal files).
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    fn u16le(out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32le(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    // Version 2.0, no flags, STORED, time 00:00, date 1980-01-01; then CRC and sizes.
    fn common(out: &mut Vec<u8>, crc: u32, size: u32) {
        for v in [20, 0, 0, 0, 0x21] {
            u16le(out, v);
        }
        u32le(out, crc);
        u32le(out, size);
        u32le(out, size);
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(data);
        let size = data.len() as u32;
        u32le(&mut out, 0x0403_4b50);
        common(&mut out, crc, size);
        u16le(&mut out, name.len() as u16);
        u16le(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        u32le(&mut central, 0x0201_4b50);
        u16le(&mut central, 20);
        common(&mut central, crc, size);
        u16le(&mut central, name.len() as u16);
        for _ in 0..4 {
            u16le(&mut central, 0); // extra, comment, disk, internal attributes
        }
        u32le(&mut central, 0); // external attributes
        u32le(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
    }
    let (start, size) = (out.len() as u32, central.len() as u32);
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    for v in [0, 0, entries.len() as u16, entries.len() as u16] {
        u16le(&mut out, v);
    }
    u32le(&mut out, size);
    u32le(&mut out, start);
    u16le(&mut out, 0);
    out
}

const CONTENT_TYPES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/xml\"/>\
<Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/>\
<Override PartName=\"/word/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml\"/>\
</Types>";

const RELS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/>\
</Relationships>";

const DOCUMENT_RELS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" Target=\"styles.xml\"/>\
</Relationships>";

const STYLES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<w:styles xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
<w:docDefaults><w:rPrDefault><w:rPr><w:rFonts w:ascii=\"Arial\" w:hAnsi=\"Arial\" w:cs=\"Arial\" w:eastAsia=\"Arial\"/>\
<w:sz w:val=\"22\"/><w:lang w:val=\"ru-RU\"/></w:rPr></w:rPrDefault>\
<w:pPrDefault><w:pPr><w:spacing w:after=\"120\" w:line=\"264\" w:lineRule=\"auto\"/></w:pPr></w:pPrDefault></w:docDefaults>\
<w:style w:type=\"paragraph\" w:default=\"1\" w:styleId=\"Normal\"><w:name w:val=\"Normal\"/><w:qFormat/></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Title\"><w:name w:val=\"Title\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:spacing w:after=\"240\"/></w:pPr><w:rPr><w:b/><w:sz w:val=\"40\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Heading1\"><w:name w:val=\"heading 1\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:keepNext/><w:spacing w:before=\"360\" w:after=\"120\"/><w:outlineLvl w:val=\"0\"/></w:pPr><w:rPr><w:b/><w:sz w:val=\"32\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Heading2\"><w:name w:val=\"heading 2\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:keepNext/><w:spacing w:before=\"240\" w:after=\"120\"/><w:outlineLvl w:val=\"1\"/></w:pPr><w:rPr><w:b/><w:sz w:val=\"28\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Heading3\"><w:name w:val=\"heading 3\"/><w:basedOn w:val=\"Normal\"/><w:next w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:keepNext/><w:spacing w:before=\"200\" w:after=\"80\"/><w:outlineLvl w:val=\"2\"/></w:pPr><w:rPr><w:b/><w:sz w:val=\"24\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"Quote\"><w:name w:val=\"Quote\"/><w:basedOn w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:ind w:left=\"567\"/></w:pPr><w:rPr><w:color w:val=\"404040\"/></w:rPr></w:style>\
<w:style w:type=\"paragraph\" w:styleId=\"ListItem\"><w:name w:val=\"List Item\"/><w:basedOn w:val=\"Normal\"/><w:qFormat/>\
<w:pPr><w:spacing w:after=\"60\"/><w:ind w:left=\"567\" w:hanging=\"283\"/></w:pPr></w:style>\
<w:style w:type=\"table\" w:default=\"1\" w:styleId=\"TableNormal\"><w:name w:val=\"Normal Table\"/>\
<w:tblPr><w:tblInd w:w=\"0\" w:type=\"dxa\"/><w:tblCellMar><w:left w:w=\"108\" w:type=\"dxa\"/><w:right w:w=\"108\" w:type=\"dxa\"/></w:tblCellMar></w:tblPr></w:style>\
<w:style w:type=\"table\" w:styleId=\"TableGrid\"><w:name w:val=\"Table Grid\"/><w:basedOn w:val=\"TableNormal\"/>\
<w:pPr><w:spacing w:after=\"0\"/></w:pPr><w:tblPr><w:tblBorders>\
<w:top w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"808080\"/><w:left w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"808080\"/>\
<w:bottom w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"808080\"/><w:right w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"808080\"/>\
<w:insideH w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"808080\"/><w:insideV w:val=\"single\" w:sz=\"4\" w:space=\"0\" w:color=\"808080\"/>\
</w:tblBorders></w:tblPr></w:style>\
</w:styles>";

/// Reading DOCX files back, for tests here and in other crates: the STORED entries of a ZIP
/// archive as this module writes them, each checked against its CRC-32.
pub mod read {
    /// The entries, by name, in archive order; `None` when the bytes are not such an archive
    /// or an entry's CRC-32 does not match.
    pub fn entries(zip: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
        let u16_at = |at: usize| Some(u16::from_le_bytes(zip.get(at..at + 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(zip.get(at..at + 4)?.try_into().ok()?));
        let end = zip.len().checked_sub(22)?;
        if u32_at(end)? != 0x0605_4b50 {
            return None;
        }
        let count = usize::from(u16_at(end + 10)?);
        let mut at = u32_at(end + 16)? as usize;
        let mut out = Vec::new();
        for _ in 0..count {
            if u32_at(at)? != 0x0201_4b50 || u16_at(at + 10)? != 0 {
                return None;
            }
            let crc = u32_at(at + 16)?;
            let size = u32_at(at + 24)? as usize;
            let name_len = usize::from(u16_at(at + 28)?);
            let skip = usize::from(u16_at(at + 30)?) + usize::from(u16_at(at + 32)?);
            let local = u32_at(at + 42)? as usize;
            let name = String::from_utf8(zip.get(at + 46..at + 46 + name_len)?.to_vec()).ok()?;
            at += 46 + name_len + skip;
            if u32_at(local)? != 0x0403_4b50 {
                return None;
            }
            let start =
                local + 30 + usize::from(u16_at(local + 26)?) + usize::from(u16_at(local + 28)?);
            let data = zip.get(start..start + size)?.to_vec();
            if crc32fast::hash(&data) != crc {
                return None;
            }
            out.push((name, data));
        }
        Some(out)
    }

    /// The text of entry `name`.
    pub fn entry(zip: &[u8], name: &str) -> Option<String> {
        let (_, data) = entries(zip)?.into_iter().find(|(n, _)| n == name)?;
        String::from_utf8(data).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_a_zip_of_its_parts_with_escaped_utf8_text() {
        let mut doc = Document::new();
        doc.title("Отчёт «Щука» & <партнёры>")
            .heading(2, "Метрики")
            .runs(vec![Run::bold("Клиент"), Run::plain(": \"да\"  ")])
            .item(vec![Run::plain("пункт")])
            .quote("Очень шумно", Some("0:04–0:07".into()))
            .table(
                vec!["Показатель".into(), "Значение".into()],
                vec![vec!["a < b".into()]],
            );

        let bytes = doc.to_bytes();
        let names: Vec<String> = read::entries(&bytes)
            .expect("a valid archive")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let xml = read::entry(&bytes, "word/document.xml").unwrap();

        assert_eq!(
            names,
            [
                "[Content_Types].xml",
                "_rels/.rels",
                "word/document.xml",
                "word/_rels/document.xml.rels",
                "word/styles.xml"
            ]
        );
        assert_eq!(xml, doc.document_xml());
        for part in [
            "<w:pStyle w:val=\"Title\"/></w:pPr><w:r><w:t xml:space=\"preserve\">Отчёт «Щука» &amp; &lt;партнёры&gt;</w:t>",
            "<w:pStyle w:val=\"Heading2\"/>",
            "<w:r><w:rPr><w:b/></w:rPr><w:t xml:space=\"preserve\">Клиент</w:t></w:r>\
             <w:r><w:t xml:space=\"preserve\">: &quot;да&quot;  </w:t></w:r>",
            "<w:pStyle w:val=\"ListItem\"/>",
            "«Очень шумно»</w:t></w:r><w:r><w:t xml:space=\"preserve\"> — 0:04–0:07</w:t>",
            "<w:tblHeader/>",
            ">a &lt; b</w:t>",
        ] {
            assert!(xml.contains(part), "{part:?} missing in:\n{xml}");
        }
        assert_eq!(xml.matches("<w:tc>").count(), 4, "short rows are padded");
        let styles = read::entry(&bytes, "word/styles.xml").unwrap();
        for id in ["Title", "Heading1", "Heading3", "Quote", "TableGrid"] {
            assert!(styles.contains(&format!("w:styleId=\"{id}\"")), "{id}");
        }
    }

    #[test]
    fn text_xml_does_not_allow_is_replaced_and_line_breaks_are_breaks() {
        assert_eq!(escape("a\u{1}b\u{ffff}"), "a b ");
        let mut doc = Document::new();
        doc.paragraph("один\r\nдва\tтри");
        assert!(doc.document_xml().contains(
            "<w:t xml:space=\"preserve\">один</w:t><w:br/><w:t xml:space=\"preserve\">два три</w:t>"
        ));
    }

    #[test]
    fn a_damaged_archive_is_not_read() {
        let bytes = Document::new().to_bytes();
        assert!(read::entries(&bytes).is_some());
        let mut damaged = bytes.clone();
        let at = damaged.len() / 2;
        damaged[at] ^= 0xff;
        assert!(read::entries(&damaged).is_none());
        assert!(read::entries(b"not a zip").is_none());
    }

    #[test]
    fn equal_documents_are_equal_files() {
        let mut doc = Document::new();
        doc.heading(7, "глубоко");
        assert_eq!(doc.to_bytes(), doc.to_bytes());
        assert!(
            doc.document_xml().contains("Heading3"),
            "levels are clamped"
        );
    }
}
