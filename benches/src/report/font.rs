//! A 5×7 bitmap font with two rows of descenders, for the PNG plots: printable ASCII, `µ` and
//! `→`. Glyphs are trimmed to their inked columns, so text is proportionally spaced.

use std::sync::LazyLock;

/// Rows in a glyph cell: [`ASCENT`] above the baseline, two below it.
pub(super) const HEIGHT: usize = 9;
/// Rows above the baseline (the height of a capital or a digit).
pub(super) const ASCENT: usize = 7;
/// Columns in a glyph cell before trimming.
const CELL: usize = 5;
/// Blank columns after each glyph.
const GAP: usize = 1;
/// Width of a space, without its gap.
const SPACE: usize = 2;

/// The glyphs, sixteen to a block: a line naming them, one every six columns, then their
/// [`HEIGHT`] rows, `#` ink and `.` paper, each glyph [`CELL`] columns wide and a space apart.
/// A space is not drawn here; it is [`SPACE`] blank columns.
const SHEET: &str = r##"
!     "     #     $     %     &     '     (     )     *     +     ,     -     .     /     0
..#.. .#.#. .#.#. ..#.. ##... .##.. ..#.. ...#. .#... ..... ..... ..... ..... ..... ....# .###.
..#.. .#.#. .#.#. .#### ##..# #..#. ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..... ..... ....# #...#
..#.. .#.#. ##### #.#.. ...#. #.#.. .#... .#... ...#. #.#.# ..#.. ..... ..... ..... ...#. #..##
..#.. ..... .#.#. .###. ..#.. .#... ..... .#... ...#. .###. ##### ..... .###. ..... ..#.. #.#.#
..#.. ..... ##### ..#.# .#... #.#.# ..... .#... ...#. #.#.# ..#.. ..... ..... ..... .#... ##..#
..... ..... .#.#. ####. #..## #..#. ..... ..#.. ..#.. ..#.. ..#.. .##.. ..... .##.. #.... #...#
..#.. ..... .#.#. ..#.. ...## .##.# ..... ...#. .#... ..... ..... .##.. ..... .##.. #.... .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..#.. ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... .....
1     2     3     4     5     6     7     8     9     :     ;     <     =     >     ?     @
..#.. .###. ##### ...#. ##### ..##. ##### .###. .###. ..... ..... ...#. ..... .#... .###. .###.
.##.. #...# ...#. ..##. #.... .#... ....# #...# #...# ..... ..... ..#.. ..... ..#.. #...# #...#
..#.. ....# ..#.. .#.#. ####. #.... ...#. #...# #...# .##.. .##.. .#... ##### ...#. ....# ....#
..#.. ...#. ...#. #..#. ....# ####. ..#.. .###. .#### .##.. .##.. #.... ..... ....# ...#. .##.#
..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# ..... ..... .#... ##### ...#. ..#.. #.#.#
..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. .##.. .##.. ..#.. ..... ..#.. ..... #.#.#
.###. ##### .###. ...#. .###. .###. .#... .###. .##.. .##.. .##.. ...#. ..... .#... ..#.. .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..#.. ..... ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... ..... .....
A     B     C     D     E     F     G     H     I     J     K     L     M     N     O     P
.###. ####. .###. ###.. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###. ####.
#...# #...# #...# #..#. #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## #...# #...# #...#
#...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...# #...#
##### ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.# #.#.# #...# ####.
#...# #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #..## #...# #....
#...# #...# #...# #..#. #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...# #....
#...# ####. .###. ###.. ##### #.... .#### #...# .###. .##.. #...# ##### #...# #...# .###. #....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
Q     R     S     T     U     V     W     X     Y     Z     [     \     ]     ^     _     `
.###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###. #.... .###. ..#.. ..... .#...
#...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# .#... #.... ...#. .#.#. ..... ..#..
#...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. .#... .#... ...#. #...# ..... .....
#...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. .#... ..#.. ...#. ..... ..... .....
#.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... .#... ...#. ...#. ..... ..... .....
#..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #.... .#... ....# ...#. ..... ..... .....
.##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. ##### .###. ....# .###. ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ##### .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
a     b     c     d     e     f     g     h     i     j     k     l     m     n     o     p
..... #.... ..... ....# ..... ..##. ..... #.... ..#.. ...#. #.... .##.. ..... ..... ..... .....
..... #.... ..... ....# ..... .#..# ..... #.... ..... ..... #.... ..#.. ..... ..... ..... .....
.###. ####. .###. .#### .###. .#... .#### #.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###. ####.
....# #...# #.... #...# #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...# #...#
.#### #...# #.... #...# ##### .#... #...# #...# ..#.. ...#. ##... ..#.. #.#.# #...# #...# #...#
#...# #...# #...# #...# #.... .#... #...# #...# ..#.. ...#. #.#.. ..#.. #.#.# #...# #...# #...#
.#### ####. .###. .#### .###. .#... .#### #...# .###. ...#. #..#. .###. #.#.# #...# .###. ####.
..... ..... ..... ..... ..... ..... ....# ..... ..... #..#. ..... ..... ..... ..... ..... #....
..... ..... ..... ..... ..... ..... .###. ..... ..... .##.. ..... ..... ..... ..... ..... #....
q     r     s     t     u     v     w     x     y     z     {     |     }     ~     µ     →
..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ...#. ..#.. .#... ..... ..... .....
..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ..#.. ..#.. ..#.. ..... ..... .....
.#### #.##. .#### ###.. #...# #...# #...# #...# #...# ##### ..#.. ..#.. ..#.. ..... #...# ..#..
#...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#. .#... ..#.. ...#. .#... #...# ...#.
#...# #.... .###. .#... #...# #...# #.#.# ..#.. #...# ..#.. ..#.. ..#.. ..#.. #.#.# #...# #####
#...# #.... ....# .#..# #..## .#.#. #.#.# .#.#. #...# .#... ..#.. ..#.. ..#.. ...#. #..## ...#.
.#### #.... ####. ..##. .##.# ..#.. .#.#. #...# .#### ##### ...#. ..#.. .#... ..... ###.# ..#..
....# ..... ..... ..... ..... ..... ..... ..... ....# ..... ..... ..#.. ..... ..... #.... .....
....# ..... ..... ..... ..... ..... ..... ..... .###. ..... ..... ..#.. ..... ..... #.... .....
"##;

/// Drawn for a character the sheet lacks: an empty box, so the gap is visible.
const MISSING: Glyph = Glyph {
    rows: [
        0, 0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111, 0, 0,
    ],
    width: 5,
};

/// One glyph: row `r` has bit `c` set where column `c` (0 leftmost) is inked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Glyph {
    rows: [u8; HEIGHT],
    /// Inked columns, after trimming blank ones on both sides (0 for a space).
    width: u8,
}

impl Glyph {
    /// `(column, row)` of every inked pixel, row 0 at the top of the cell.
    pub(super) fn ink(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.rows.iter().enumerate().flat_map(|(r, bits)| {
            (0..CELL)
                .filter(move |c| bits >> c & 1 == 1)
                .map(move |c| (c, r))
        })
    }

    /// Columns from this glyph's left edge to the next one's.
    pub(super) fn advance(&self) -> usize {
        self.width as usize + GAP
    }
}

/// The sheet, parsed once.
static GLYPHS: LazyLock<Vec<(char, Glyph)>> = LazyLock::new(parse);

fn parse() -> Vec<(char, Glyph)> {
    let lines: Vec<Vec<char>> = SHEET
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.chars().collect())
        .collect();
    let mut glyphs = vec![(
        ' ',
        Glyph {
            rows: [0; HEIGHT],
            width: SPACE as u8,
        },
    )];
    for block in lines.chunks(HEIGHT + 1) {
        let (names, rows) = block.split_first().expect("chunks are never empty");
        assert_eq!(rows.len(), HEIGHT, "a font block has {HEIGHT} rows");
        for (i, &c) in names.iter().step_by(CELL + GAP).enumerate() {
            assert!(
                !c.is_whitespace(),
                "glyph names stand every {} columns",
                CELL + GAP
            );
            let mut bits = [0u8; HEIGHT];
            for (r, row) in rows.iter().enumerate() {
                for col in 0..CELL {
                    match row.get(i * (CELL + GAP) + col) {
                        Some('#') => bits[r] |= 1 << col,
                        Some('.') => {}
                        other => panic!("glyph {c:?}, row {r}: {other:?} is not # or ."),
                    }
                }
            }
            glyphs.push((c, trimmed(bits)));
        }
    }
    glyphs.sort_by_key(|&(c, _)| c);
    glyphs
}

/// Shifts the ink to column 0 and records its width.
fn trimmed(mut rows: [u8; HEIGHT]) -> Glyph {
    let ink = rows.iter().fold(0u8, |a, r| a | r);
    if ink == 0 {
        return Glyph { rows, width: 0 };
    }
    let left = ink.trailing_zeros() as u8;
    let width = (u8::BITS - ink.leading_zeros()) as u8 - left;
    for r in &mut rows {
        *r >>= left;
    }
    Glyph { rows, width }
}

/// The glyph for `c`, if the font has one.
pub(super) fn glyph(c: char) -> Option<Glyph> {
    GLYPHS
        .binary_search_by_key(&c, |&(g, _)| g)
        .ok()
        .map(|i| GLYPHS[i].1)
}

/// The glyph for `c`, or an empty box where the font has none.
pub(super) fn glyph_or_box(c: char) -> Glyph {
    glyph(c).unwrap_or(MISSING)
}

/// Width of `text` in font pixels, without the gap after its last glyph.
pub(super) fn width(text: &str) -> usize {
    text.chars()
        .map(|c| glyph_or_box(c).advance())
        .sum::<usize>()
        .saturating_sub(GAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_a_glyph_for_printable_ascii_and_the_unit_signs() {
        let wanted = (' '..='~').chain(['µ', '→']);
        let missing: String = wanted.filter(|&c| glyph(c).is_none()).collect();
        assert_eq!(missing, "");
        assert_eq!(GLYPHS.len(), 97, "one glyph per character, none twice");
    }

    #[test]
    fn glyphs_are_trimmed_to_their_ink() {
        let one = glyph('1').unwrap();
        assert_eq!(one.width, 3, "..#.. / .##.. / .###. spans three columns");
        assert!(one.ink().all(|(c, _)| c < 3));
        assert_eq!(glyph('W').unwrap().width, 5);
        assert_eq!(glyph('.').unwrap().width, 2);
        assert_eq!(glyph(' ').unwrap().ink().count(), 0);
        assert_eq!(width("1.5"), 3 + 1 + 2 + 1 + 5);
    }

    #[test]
    fn descenders_go_below_the_baseline_and_capitals_do_not() {
        let lowest = |c| glyph(c).unwrap().ink().map(|(_, r)| r).max().unwrap();
        assert_eq!(lowest('H'), ASCENT - 1);
        assert_eq!(lowest('x'), ASCENT - 1);
        for c in ['g', 'j', 'p', 'q', 'y', 'µ'] {
            assert_eq!(lowest(c), HEIGHT - 1, "{c}");
        }
    }

    #[test]
    fn an_unknown_character_is_drawn_as_a_box() {
        assert_eq!(glyph('€'), None);
        assert_eq!(glyph_or_box('€'), MISSING);
    }
}
