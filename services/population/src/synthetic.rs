//! Deterministic synthetic holders for demos, seeding and load tests.
//!
//! The geography is fixed: the 47 real prefectures, each with a synthetic list
//! of municipalities sized like the real one (municipalities plus the wards of
//! designated cities, 1,892 in all, each a signing-CRL partition). Municipality
//! names are made-up kanji pairs with 市, 区, 町 or 村; codes follow the shape of
//! 全国地方公共団体コード (2-digit prefecture, 3-digit municipality, check digit).
//!
//! Holder `i` of a [`Population`] depends only on the seed and `i`, so any
//! range can be generated in any order or in parallel, and always reads the same.
//! No real person's data is produced.

use std::ops::Range;

use shikko_core::{
    CertKind, DateOfBirth, FourInfo, HolderId, Municipality, PartitionId, Serial, Sex, UnixTime,
};

/// The serial of a holder's `generation`-th certificate of a kind: unique per
/// issuer, positive, 11 octets, with a recognisable prefix.
pub fn serial_for(kind: CertKind, index: u64, generation: u64) -> Serial {
    let v = (0x4A50u128 << 72)
        | (u128::from(kind.code()) << 64)
        | (u128::from(generation & 0xFFFF) << 48)
        | u128::from(index & 0xFFFF_FFFF_FFFF);
    // Never zero and at most 11 octets: always a valid serial.
    Serial::from_u128(v).unwrap_or_else(|_| unreachable!("serial_for builds a valid serial"))
}

/// The prefectures, in code order (01 北海道 to 47 沖縄県), with the number of
/// synthetic municipalities in each.
const PREFECTURES: [(&str, u32); 47] = [
    ("北海道", 188),
    ("青森県", 40),
    ("岩手県", 33),
    ("宮城県", 39),
    ("秋田県", 25),
    ("山形県", 35),
    ("福島県", 59),
    ("茨城県", 44),
    ("栃木県", 25),
    ("群馬県", 35),
    ("埼玉県", 72),
    ("千葉県", 59),
    ("東京都", 62),
    ("神奈川県", 58),
    ("新潟県", 37),
    ("富山県", 15),
    ("石川県", 19),
    ("福井県", 17),
    ("山梨県", 27),
    ("長野県", 77),
    ("岐阜県", 42),
    ("静岡県", 39),
    ("愛知県", 69),
    ("三重県", 29),
    ("滋賀県", 19),
    ("京都府", 36),
    ("大阪府", 72),
    ("兵庫県", 49),
    ("奈良県", 39),
    ("和歌山県", 30),
    ("鳥取県", 19),
    ("島根県", 19),
    ("岡山県", 30),
    ("広島県", 30),
    ("山口県", 19),
    ("徳島県", 24),
    ("香川県", 17),
    ("愛媛県", 20),
    ("高知県", 34),
    ("福岡県", 72),
    ("佐賀県", 20),
    ("長崎県", 21),
    ("熊本県", 49),
    ("大分県", 18),
    ("宮崎県", 26),
    ("鹿児島県", 43),
    ("沖縄県", 41),
];

const PLACE_FIRST: [&str; 30] = [
    "東", "西", "南", "北", "上", "下", "中", "大", "小", "高", "新", "古", "本", "長", "若", "松",
    "竹", "梅", "桜", "白", "青", "赤", "金", "石", "朝", "夕", "春", "秋", "豊", "富",
];
const PLACE_SECOND: [&str; 30] = [
    "川", "山", "田", "原", "野", "島", "浜", "岡", "森", "林", "沢", "谷", "崎", "津", "浦", "橋",
    "井", "宮", "里", "瀬", "見", "丘", "台", "坂", "江", "淵", "尾", "根", "戸", "倉",
];
const TOWNS: [&str; 24] = [
    "本町",
    "栄町",
    "中央",
    "緑町",
    "旭町",
    "幸町",
    "寿町",
    "錦町",
    "元町",
    "東町",
    "西町",
    "南町",
    "北町",
    "宮前",
    "駅前",
    "城山",
    "桜台",
    "若葉",
    "日の出",
    "曙町",
    "末広",
    "泉町",
    "港町",
    "平和台",
];
const FAMILY_NAMES: [&str; 40] = [
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "伊藤",
    "渡辺",
    "山本",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山田",
    "佐々木",
    "山口",
    "松本",
    "井上",
    "木村",
    "林",
    "斎藤",
    "清水",
    "山崎",
    "森",
    "池田",
    "橋本",
    "阿部",
    "石川",
    "山下",
    "中島",
    "石井",
    "小川",
    "前田",
    "岡田",
    "長谷川",
    "藤田",
    "後藤",
    "近藤",
    "村上",
    "遠藤",
    "青木",
    "坂本",
];
const MALE_NAMES: [&str; 30] = [
    "太郎", "一郎", "健太", "翔太", "大輔", "誠", "浩", "隆", "学", "博", "蓮", "悠真", "湊",
    "陽翔", "樹", "大翔", "拓海", "健一", "正樹", "和也", "直樹", "修", "茂", "勇", "清", "三郎",
    "次郎", "悟", "亮", "豊",
];
const FEMALE_NAMES: [&str; 30] = [
    "花子",
    "陽子",
    "恵子",
    "裕子",
    "美香",
    "愛",
    "舞",
    "彩",
    "真由美",
    "直美",
    "陽菜",
    "結愛",
    "凛",
    "葵",
    "芽依",
    "さくら",
    "美咲",
    "由美",
    "智子",
    "久美子",
    "幸子",
    "和子",
    "洋子",
    "明美",
    "千尋",
    "優子",
    "香織",
    "美穂",
    "翠",
    "紬",
];

/// A small, fast, deterministic PRNG (splitmix64): not for keys or secrets.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A value in `0..n` (`0` when `n` is 0); the bias is below 2^-32 for the sizes used here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// splitmix64's finalizer: a bijection on u64.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixed synthetic municipalities, in code order (1,892 of them).
pub fn municipalities() -> Vec<Municipality> {
    let total = PREFECTURES.iter().map(|(_, n)| *n as usize).sum();
    let mut out = Vec::with_capacity(total);
    for (p, (prefecture, count)) in (1u32..).zip(PREFECTURES) {
        let wards = if p == 13 { 23 } else { 0 };
        let cities = wards + (count - wards) * 45 / 100;
        let villages = count / 10;
        for i in 0..count {
            let pair = ((i + p * 37) % 900) as usize;
            let suffix = if i < wards {
                "区"
            } else if i < cities {
                "市"
            } else if i < count - villages {
                "町"
            } else {
                "村"
            };
            let city = format!(
                "{}{}{}",
                PLACE_FIRST[pair / 30],
                PLACE_SECOND[pair % 30],
                suffix
            );
            out.push(Municipality {
                code: PartitionId(municipality_code(p, 101 + i)),
                prefecture: prefecture.to_owned(),
                city,
            });
        }
    }
    out
}

/// A six-digit code: prefecture (2 digits), municipality (3 digits), check digit
/// (11 minus the weighted sum 6,5,4,3,2 modulo 11, last digit), as in
/// 全国地方公共団体コード.
fn municipality_code(prefecture: u32, number: u32) -> u32 {
    let five = prefecture * 1000 + number;
    let digits = [
        five / 10_000,
        five / 1000 % 10,
        five / 100 % 10,
        five / 10 % 10,
        five % 10,
    ];
    let sum: u32 = digits.iter().zip([6, 5, 4, 3, 2]).map(|(d, w)| d * w).sum();
    let check = (11 - sum % 11) % 10;
    five * 10 + check
}

/// The Japanese era digit of a Gregorian date: 1 Meiji, 2 Taisho, 3 Showa, 4 Heisei, 5 Reiwa.
pub fn era_of(year: u16, month: u8, day: u8) -> u8 {
    let d = (year, month, day);
    if d < (1912, 7, 30) {
        1
    } else if d < (1926, 12, 25) {
        2
    } else if d < (1989, 1, 8) {
        3
    } else if d < (2019, 5, 1) {
        4
    } else {
        5
    }
}

/// One synthetic holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticHolder {
    /// The holder's position in its population.
    pub index: u64,
    /// The opaque id (`H` and 16 hex digits), unique within a population.
    pub id: HolderId,
    /// The municipality of the address (the signing CRL partition).
    pub municipality: PartitionId,
    /// Name, address, date of birth, sex.
    pub four_info: FourInfo,
}

/// A deterministic population of synthetic holders.
#[derive(Debug, Clone)]
pub struct Population {
    seed: u64,
    municipalities: Vec<Municipality>,
}

// Domain separation between the random streams drawn for one holder.
const STREAM_ID: u64 = 0x4944;
const STREAM_PERSON: u64 = 0x5045_5253_4F4E;
const STREAM_ADDRESS: u64 = 0x4144_4452;

impl Population {
    /// The population of a seed.
    pub fn new(seed: u64) -> Population {
        Population {
            seed,
            municipalities: municipalities(),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// All municipalities, in code order.
    pub fn municipalities(&self) -> &[Municipality] {
        &self.municipalities
    }

    /// The municipality with a code.
    pub fn municipality(&self, code: PartitionId) -> Option<&Municipality> {
        self.municipalities
            .binary_search_by_key(&code, |m| m.code)
            .ok()
            .map(|i| &self.municipalities[i])
    }

    /// Holder number `index`.
    pub fn holder(&self, index: u64) -> SyntheticHolder {
        let mut person = self.stream(STREAM_PERSON, index, 0);
        let sex = if person.chance(1) {
            Sex::Unknown
        } else if person.below(2) == 0 {
            Sex::Male
        } else {
            Sex::Female
        };
        let family = FAMILY_NAMES[person.below(FAMILY_NAMES.len() as u64) as usize];
        let given = match sex {
            Sex::Male => MALE_NAMES[person.below(MALE_NAMES.len() as u64) as usize],
            Sex::Female => FEMALE_NAMES[person.below(FEMALE_NAMES.len() as u64) as usize],
            Sex::Unknown => {
                let all = MALE_NAMES.len() + FEMALE_NAMES.len();
                let i = person.below(all as u64) as usize;
                MALE_NAMES
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| FEMALE_NAMES[(i - MALE_NAMES.len()) % FEMALE_NAMES.len()])
            }
        };
        let date_of_birth = random_date_of_birth(&mut person);
        let (municipality, address) = self.address(index, 0);
        let id_bits = mix64(index ^ mix64(self.seed ^ STREAM_ID));
        SyntheticHolder {
            index,
            id: HolderId::new(format!("H{id_bits:016X}")).expect("synthetic ids are valid"),
            municipality,
            four_info: FourInfo {
                name: format!("{family}\u{3000}{given}"),
                address,
                date_of_birth,
                sex,
            },
        }
    }

    /// Holders `range.start` to `range.end - 1`, in order.
    pub fn holders(&self, range: Range<u64>) -> impl Iterator<Item = SyntheticHolder> + '_ {
        range.map(move |i| self.holder(i))
    }

    /// The holder after their `move_number`-th move (1, 2, ...): a new address,
    /// usually in another municipality; name, date of birth and sex unchanged.
    pub fn moved(&self, holder: &SyntheticHolder, move_number: u32) -> SyntheticHolder {
        let (municipality, address) = self.address(holder.index, u64::from(move_number));
        let mut out = holder.clone();
        out.municipality = municipality;
        out.four_info.address = address;
        out
    }

    fn stream(&self, stream: u64, index: u64, generation: u64) -> SplitMix64 {
        SplitMix64::new(mix64(
            self.seed ^ mix64(stream ^ mix64(index ^ mix64(generation))),
        ))
    }

    fn address(&self, index: u64, generation: u64) -> (PartitionId, String) {
        let mut r = self.stream(STREAM_ADDRESS, index, generation);
        let m = &self.municipalities[r.below(self.municipalities.len() as u64) as usize];
        let town = TOWNS[r.below(TOWNS.len() as u64) as usize];
        let address = format!(
            "{}{}{}{}丁目{}番{}号",
            m.prefecture,
            m.city,
            town,
            1 + r.below(9),
            1 + r.below(30),
            1 + r.below(20)
        );
        (m.code, address)
    }
}

fn random_date_of_birth(r: &mut SplitMix64) -> DateOfBirth {
    // Uniform over 1920-01-01 ..= 2020-12-31; every era from Taisho on occurs.
    let first = UnixTime::from_civil(1920, 1, 1).0 / 86_400;
    let last = UnixTime::from_civil(2020, 12, 31).0 / 86_400;
    let span = u64::try_from(last - first + 1).unwrap_or(1);
    let day = first + i64::try_from(r.below(span)).unwrap_or(0);
    let (y, m, d, ..) = UnixTime(day * 86_400).to_civil();
    let year = u16::try_from(y).unwrap_or(1970);
    DateOfBirth::new(era_of(year, m, d), year, m, d).expect("a civil date in range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_change_on_the_right_days() {
        assert_eq!(era_of(1912, 7, 29), 1);
        assert_eq!(era_of(1912, 7, 30), 2);
        assert_eq!(era_of(1926, 12, 24), 2);
        assert_eq!(era_of(1926, 12, 25), 3);
        assert_eq!(era_of(1989, 1, 7), 3);
        assert_eq!(era_of(1989, 1, 8), 4);
        assert_eq!(era_of(2019, 4, 30), 4);
        assert_eq!(era_of(2019, 5, 1), 5);
    }

    #[test]
    fn municipality_codes_are_unique_sorted_and_valid() {
        let ms = municipalities();
        assert_eq!(ms.len(), 1892);
        assert!(ms.windows(2).all(|w| w[0].code < w[1].code));
        for m in &ms {
            m.validate().unwrap();
        }
        // 千代田区's real code is 131016: the check digit rule matches.
        assert_eq!(municipality_code(13, 101), 131_016);
        let mut names: Vec<_> = ms.iter().map(|m| (&m.prefecture, &m.city)).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            ms.len(),
            "city names unique within a prefecture"
        );
    }
}
